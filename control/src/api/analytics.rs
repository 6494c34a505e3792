//! `GET /v1/analytics/calls?from&to&interval=hour|day&group_by=agent|number|region`: call counts,
//! answered calls, talk time (answer to end), outcomes (end reasons), usage (billable minutes,
//! agent turns, recognised speech, the agent's characters heard and synthesized — what providers
//! bill by), time to answer and ring time, and the agent's voice-to-voice latency percentiles
//! per time bucket and group, for anyone in the workspace.
//! `from` defaults to seven days before `to`, `to` to now, and must come before it (or the answer
//! is a 422 naming both); buckets start at multiples of the interval since the epoch (UTC), empty
//! ones are left out. Latency percentiles are read from hourly histograms with bins 4 % apart:
//! within about 2 % of the exact figure, and covering the whole hours that the range touches.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::problem::Problem;
use super::query::{bad_parameter, ordered_range, parse_time, StrictQuery};
use super::AppState;
use crate::store::{
    AnalyticsGroup, AnalyticsQuery, AnswerTimes, CallBucket, CallUsage, CallUsageRecord,
    LatencySummary,
};
use freya_shared::ids::{now_ms, rfc3339};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The most buckets one request may span (before grouping).
const MAX_BUCKETS: i64 = 2_000;

/// The parameters of `GET /v1/analytics/calls`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct CallAnalyticsQuery {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
    group_by: Option<String>,
}

/// The aggregates of one bucket (and group).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct BucketView {
    /// The start of the bucket.
    start: String,
    /// The agent id, number or region, when grouped (`null` for calls without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<Option<String>>,
    calls: i64,
    answered: i64,
    /// Answer-to-end time of the answered calls that ended, summed and averaged.
    total_duration_ms: i64,
    average_duration_ms: Option<i64>,
    /// Ended calls by end reason (or final status when the edge gave no reason).
    outcomes: std::collections::BTreeMap<String, i64>,
    usage: UsageView,
    /// End of the caller's speech to the first packet of the agent's reply; `null` when no reply
    /// reached a caller.
    voice_to_voice_ms: Option<LatencyView>,
    /// A call's start (its INVITE, or our dial) to its answer, over the answered calls: the
    /// ringing, and a placed call's failed attempts; `null` when none was answered.
    time_to_answer_ms: Option<AnswerTimeView>,
    /// Ringing (our 180, or the first one a placed call heard) to the answer, or to the end of
    /// a call never answered (cancelled while ringing, unanswered); `null` when no call rang.
    ring_time_ms: Option<AnswerTimeView>,
}

/// Percentiles of the time to answer (or of the ring time).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AnswerTimeView {
    calls: i64,
    p50: i64,
    p95: i64,
}

/// What the bucket's calls used: the units that carriers and AI providers bill by.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct UsageView {
    /// Answer-to-end time, each call rounded up to whole minutes.
    billable_minutes: i64,
    /// Agent replies (one language-model turn each).
    agent_turns: i64,
    /// The callers' speech sent to recognition.
    caller_speech_ms: i64,
    /// The characters of the agent's transcript lines, a cut line's closing dash included:
    /// `agent_characters_played` plus one per line cut off (kept for older readers).
    agent_characters: i64,
    /// Characters of the agent's speech the callers heard (a reply cut off by a barge-in or a
    /// hang-up counts as far as it was played).
    agent_characters_played: i64,
    /// Characters sent to speech synthesis, heard or not: what a TTS provider bills. A call
    /// whose edge did not count them (an older edge, a call still live) adds its played ones.
    agent_characters_synthesized: i64,
}

/// What one call used, in its record (`GET /v1/calls/{id}` and the call log).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CallUsageView {
    /// Agent replies (one language-model turn each).
    agent_turns: i64,
    /// The caller's speech sent to recognition.
    caller_speech_ms: i64,
    /// The characters of the agent's transcript lines, a cut line's closing dash included:
    /// `agent_characters_played` plus one per line cut off (kept for older readers).
    agent_characters: i64,
    /// Characters of the agent's speech the caller heard.
    agent_characters_played: i64,
    /// Characters sent to speech synthesis, heard or not (what a TTS provider bills); `null`
    /// until the call has ended, for a call never answered (nothing was synthesized), or when
    /// its edge did not count them (an older edge).
    agent_characters_synthesized: Option<i64>,
}

impl From<CallUsageRecord> for CallUsageView {
    fn from(u: CallUsageRecord) -> Self {
        CallUsageView {
            agent_turns: u.agent_turns,
            caller_speech_ms: u.caller_speech_ms,
            agent_characters: u.agent_characters,
            agent_characters_played: u.agent_characters_played,
            agent_characters_synthesized: u.agent_characters_synthesized,
        }
    }
}

/// Percentiles of the agent's reply latency.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LatencyView {
    turns: i64,
    p50: i64,
    p95: i64,
}

impl From<CallUsage> for UsageView {
    fn from(u: CallUsage) -> Self {
        UsageView {
            billable_minutes: u.billable_minutes,
            agent_turns: u.agent_turns,
            caller_speech_ms: u.caller_speech_ms,
            agent_characters: u.agent_characters,
            agent_characters_played: u.agent_characters_played,
            agent_characters_synthesized: u.agent_characters_synthesized,
        }
    }
}

impl From<LatencySummary> for LatencyView {
    fn from(l: LatencySummary) -> Self {
        LatencyView {
            turns: l.turns,
            p50: l.p50_ms,
            p95: l.p95_ms,
        }
    }
}

/// The answer of `GET /v1/analytics/calls`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CallAnalytics {
    from: String,
    to: String,
    interval: &'static str,
    group_by: Option<&'static str>,
    buckets: Vec<BucketView>,
}

fn bucket_view(b: CallBucket, grouped: bool) -> BucketView {
    BucketView {
        start: rfc3339(b.start_ms),
        group: grouped.then_some(b.group),
        calls: b.calls,
        answered: b.answered,
        total_duration_ms: b.total_duration_ms,
        average_duration_ms: (b.completed > 0).then(|| b.total_duration_ms / b.completed),
        outcomes: b.outcomes,
        usage: b.usage.into(),
        voice_to_voice_ms: b.voice_to_voice.map(Into::into),
        time_to_answer_ms: b.time_to_answer.map(Into::into),
        ring_time_ms: b.ring_time.map(Into::into),
    }
}

impl From<AnswerTimes> for AnswerTimeView {
    fn from(t: AnswerTimes) -> Self {
        AnswerTimeView {
            calls: t.calls,
            p50: t.p50_ms,
            p95: t.p95_ms,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/analytics/calls",
    tag = "analytics",
    summary = "Call counts, talk time, outcomes, usage and reply latency per bucket",
    params(CallAnalyticsQuery),
    responses(
        (status = 200, description = "The buckets", body = CallAnalytics),
        (status = 422, description = "`from` is not before `to`: `errors` names both", body = super::openapi::ProblemDoc)
    )
)]
pub(super) async fn calls(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<CallAnalyticsQuery>,
) -> Result<Json<CallAnalytics>, Problem> {
    let (interval, interval_ms) = match q.interval.as_deref() {
        None | Some("day") => ("day", DAY_MS),
        Some("hour") => ("hour", HOUR_MS),
        Some(other) => {
            return Err(bad_parameter(
                "interval",
                &format!("`{other}` is not hour or day"),
            ))
        }
    };
    let (group_by, group) = match q.group_by.as_deref() {
        None => (None, AnalyticsGroup::None),
        Some("agent") => (Some("agent"), AnalyticsGroup::Agent),
        Some("number") => (Some("number"), AnalyticsGroup::Number),
        Some("region") => (Some("region"), AnalyticsGroup::Region),
        Some(other) => {
            return Err(bad_parameter(
                "group_by",
                &format!("`{other}` is not agent, number or region"),
            ))
        }
    };
    let to_ms =
        q.to.as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?
            .unwrap_or_else(now_ms);
    let from_ms = q
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()?
        .unwrap_or(to_ms.saturating_sub(7 * DAY_MS));
    ordered_range(from_ms, to_ms)?;
    if (to_ms - from_ms) / interval_ms > MAX_BUCKETS {
        return Err(bad_parameter(
            "interval",
            &format!("the range spans more than {MAX_BUCKETS} buckets; narrow it or use day"),
        ));
    }
    let buckets = state
        .store
        .call_analytics(
            &caller.scope,
            &AnalyticsQuery {
                from_ms,
                to_ms,
                interval_ms,
                group,
            },
        )
        .await?;
    Ok(Json(CallAnalytics {
        from: rfc3339(from_ms),
        to: rfc3339(to_ms),
        interval,
        group_by,
        buckets: buckets
            .into_iter()
            .map(|b| bucket_view(b, group_by.is_some()))
            .collect(),
    }))
}
