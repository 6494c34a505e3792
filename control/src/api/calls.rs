//! `/v1/calls`: the call log (filtered, cursor-paged), one call with its events and transcript,
//! and hanging up a live call. Placing one is `call_placing.rs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::problem::Problem;
use super::query::{decode_cursor, encode_cursor, page_limit, parse_time, StrictQuery};
use super::recordings::RecordingView;
use super::resource_id::CallId;
use super::{AppState, List};
use crate::store::{CallFilter, CallRecord, Role, StoredEvent};
use freya_proto::v1::{edge_command::Command, EdgeCommand, HangupCall};
use freya_shared::ids::{new_id, rfc3339};

/// A call as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CallView {
    id: String,
    direction: String,
    from: Option<String>,
    to: Option<String>,
    agent_id: Option<String>,
    edge_id: Option<String>,
    /// The region of the edge that carried the call; `null` when that edge never registered.
    region: Option<String>,
    status: String,
    started_at: String,
    /// When it began ringing (our 180, or the first one a placed call heard).
    ringing_at: Option<String>,
    answered_at: Option<String>,
    ended_at: Option<String>,
    end_reason: Option<String>,
    /// For an inbound SIP call, the Call-ID its caller chose (to find it in a carrier's logs);
    /// `id` is ours.
    sip_call_id: Option<String>,
    /// The call's OpenTelemetry trace id (32 hex digits), to find its trace (setup, turns,
    /// recognition, model, synthesis, tools) in the tracing backend; `null` when its edge sent
    /// none.
    trace_id: Option<String>,
    /// When the call's transcript, events and recording were erased on request; the call is a
    /// tombstone since (times and outcome only).
    erased_at: Option<String>,
    /// The call's recording, once its edge has uploaded it.
    recording: Option<RecordingView>,
    /// What the call used: replies, recognised speech, the agent's characters heard and
    /// synthesized.
    usage: super::analytics::CallUsageView,
    /// The median voice-to-voice latency of the replies the caller heard (end of their speech
    /// to the reply's first audio), in ms; `null` before the first one. The call log's latency
    /// column, from the call's `call.turn_latency` events.
    latency_ms: Option<u64>,
    /// For an outbound call, the edges that could not place it, in order, and why (their
    /// `call.failed` reason: full, draining, trunks failing). A call one edge could not place
    /// is placed once more on another (`call.retried`), which `edge_id` then names; empty when
    /// the first edge placed it.
    edge_attempts: Vec<EdgeAttemptView>,
}

/// An edge that could not place an outbound call.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct EdgeAttemptView {
    edge_id: String,
    /// Its `call.failed` reason (`all_trunks_failed`, `edge_at_capacity`, `edge_draining`...).
    reason: String,
}

impl CallView {
    /// The view with its median reply latency, from the replies' voice-to-voice latencies.
    fn with_latencies(mut self, latencies: Vec<u64>) -> Self {
        self.latency_ms = median_ms(latencies);
        self
    }
}

/// The nearest-rank median (as analytics reads its percentiles): the lower middle of an even
/// count.
fn median_ms(mut latencies: Vec<u64>) -> Option<u64> {
    latencies.sort_unstable();
    let middle = latencies.len().checked_sub(1)? / 2;
    latencies.get(middle).copied()
}

impl From<CallRecord> for CallView {
    fn from(c: CallRecord) -> Self {
        let recording = c.recording.map(|r| RecordingView::of(&c.id, r));
        Self {
            id: c.id,
            direction: c.direction,
            from: c.from_number,
            to: c.to_number,
            agent_id: c.agent_id,
            edge_id: c.edge_id,
            region: c.region,
            status: c.status,
            started_at: rfc3339(c.started_at_ms),
            ringing_at: c.ringing_at_ms.map(rfc3339),
            answered_at: c.answered_at_ms.map(rfc3339),
            ended_at: c.ended_at_ms.map(rfc3339),
            end_reason: c.end_reason,
            sip_call_id: c.sip_call_id,
            trace_id: c.trace_id,
            erased_at: c.erased_at_ms.map(rfc3339),
            recording,
            usage: c.usage.into(),
            latency_ms: None,
            edge_attempts: c
                .edge_attempts
                .into_iter()
                .map(|a| EdgeAttemptView {
                    edge_id: a.edge_id,
                    reason: a.reason,
                })
                .collect(),
        }
    }
}

/// An event of a call.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct EventView {
    id: String,
    kind: String,
    at: String,
    payload: serde_json::Value,
}

/// One call in full.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CallDetail {
    #[serde(flatten)]
    call: CallView,
    events: Vec<EventView>,
    /// The `call.transcript` events' payloads, in order, each with its time.
    transcript: Vec<serde_json::Value>,
    /// The workflow version the call ran on (`{id, version}`), if a workflow answered it.
    workflow: Option<serde_json::Value>,
    /// What the workflow did, step by step (`call.workflow_step` events), each with its time:
    /// nodes entered, branches taken and why, variables changed, functions' status and timing.
    /// For a viewer, a `variables_changed` step lists the names (`changed`) without the values
    /// (`values_hidden: true`); a function's saved answer is at most 4 KiB, marked when cut.
    workflow_steps: Vec<serde_json::Value>,
}

/// The filters of `GET /v1/calls`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct CallQuery {
    from: Option<String>,
    to: Option<String>,
    number: Option<String>,
    agent_id: Option<String>,
    status: Option<String>,
    direction: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// Whether `id` can name a call: outbound calls have UUIDs, inbound ones their SIP Call-ID.
pub(super) fn plausible_call_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 1024 && id.bytes().all(|b| b.is_ascii_graphic())
}

const STATUSES: [&str; 5] = ["queued", "ringing", "in_progress", "ended", "failed"];

#[utoipa::path(
    get,
    path = "/v1/calls",
    tag = "calls",
    summary = "The call log, newest first, filtered and cursor-paged",
    params(CallQuery),
    responses(
        (status = 200, description = "A page of calls", body = List<CallView>),
        (status = 422, description = "`from` is not before `to`: `errors` names both", body = super::openapi::ProblemDoc)
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    StrictQuery(q): StrictQuery<CallQuery>,
) -> Result<Json<List<CallView>>, Problem> {
    if let Some(status) = q.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(super::query::bad_parameter(
            "status",
            &format!("`{status}` is not one of {}", STATUSES.join(", ")),
        ));
    }
    if let Some(d) = q
        .direction
        .as_deref()
        .filter(|d| !["inbound", "outbound"].contains(d))
    {
        return Err(super::query::bad_parameter(
            "direction",
            &format!("`{d}` is not inbound or outbound"),
        ));
    }
    let from_ms = q
        .from
        .as_deref()
        .map(|t| parse_time("from", t))
        .transpose()?;
    let to_ms = q.to.as_deref().map(|t| parse_time("to", t)).transpose()?;
    if let (Some(from_ms), Some(to_ms)) = (from_ms, to_ms) {
        super::query::ordered_range(from_ms, to_ms)?;
    }
    let filter = CallFilter {
        from_ms,
        to_ms,
        number: q.number,
        agent_id: q.agent_id,
        status: q.status,
        direction: q.direction,
        after: q.cursor.as_deref().map(decode_cursor).transpose()?,
        limit: page_limit(q.limit)?,
    };
    let page = state.store.call_page(&caller.scope, &filter).await?;
    let ids: Vec<&str> = page.calls.iter().map(|c| c.id.as_str()).collect();
    let mut latencies = state.store.reply_latencies(&caller.scope, &ids).await?;
    Ok(Json(List {
        data: page
            .calls
            .into_iter()
            .map(|c| {
                let replies = latencies.remove(&c.id).unwrap_or_default();
                CallView::from(c).with_latencies(replies)
            })
            .collect(),
        next_cursor: page.next.map(|(at, id)| encode_cursor(at, &id)),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/calls/{id}",
    tag = "calls",
    summary = "One call with its events and transcript",
    params(("id" = String, Path, description = "The call's id")),
    responses((status = 200, description = "The call", body = CallDetail))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    CallId(id): CallId,
) -> Result<Json<CallDetail>, Problem> {
    let call = state.store.call(&caller.scope, &id).await?;
    let mut events = state.store.call_events(&caller.scope, &id).await?;
    if caller.role < Role::Editor {
        for event in events.iter_mut().filter(|e| e.kind == STEP_EVENT) {
            hide_step_values(&mut event.payload);
        }
    }
    let timed = |kind: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| {
                let mut line = e.payload.clone();
                if let Some(object) = line.as_object_mut() {
                    object.insert("at".into(), rfc3339(e.at_ms).into());
                }
                line
            })
            .collect()
    };
    let transcript = timed("call.transcript");
    let workflow_steps = timed(STEP_EVENT);
    let workflow = events.iter().find_map(|e| {
        match freya_shared::model::CallEventData::parse(&e.kind, &e.payload) {
            freya_shared::model::CallEventData::Started(started) => {
                let id = started.workflow_id.flatten()?;
                let version = started.workflow_version.flatten()?;
                Some(serde_json::json!({"id": id, "version": version}))
            }
            _ => None,
        }
    });
    let replies = events
        .iter()
        .filter(|e| e.kind == "call.turn_latency")
        .filter_map(|e| {
            e.payload
                .get("first_rtp_ms")
                .and_then(serde_json::Value::as_u64)
        })
        .collect();
    Ok(Json(CallDetail {
        call: CallView::from(call).with_latencies(replies),
        events: events.into_iter().map(event_view).collect(),
        transcript,
        workflow,
        workflow_steps,
    }))
}

/// Calls we place have UUIDs; calls that come in keep the caller's SIP Call-ID (RFC 3261 `word`:
/// printable ASCII, no spaces), so both name a call; anything else cannot.
/// The event kind of a workflow's steps.
const STEP_EVENT: &str = "call.workflow_step";

/// Takes the values out of a step's `changes` (a function's answer saved to a variable, digits
/// gathered), leaving the names in `changed`: only roles that may edit the workflow (editor and
/// up) see what an endpoint answered or a caller entered.
fn hide_step_values(payload: &mut serde_json::Value) {
    let Some(step) = payload.as_object_mut() else {
        return;
    };
    if let Some(serde_json::Value::Object(changes)) = step.remove("changes") {
        let names: Vec<serde_json::Value> = changes.keys().cloned().map(Into::into).collect();
        step.insert("changed".into(), names.into());
        step.insert("values_hidden".into(), true.into());
    }
}

fn event_view(e: StoredEvent) -> EventView {
    EventView {
        id: e.id,
        kind: e.kind,
        at: rfc3339(e.at_ms),
        payload: e.payload,
    }
}

#[utoipa::path(
    post,
    path = "/v1/calls/{id}/hangup",
    tag = "calls",
    summary = "Hang up a live call (editor)",
    params(("id" = String, Path, description = "The call's id")),
    responses((status = 202, description = "The edge was told to hang up", body = CallView))
)]
pub(super) async fn hangup(
    State(state): State<AppState>,
    caller: Caller,
    CallId(id): CallId,
) -> Result<(StatusCode, Json<CallView>), Problem> {
    let call = state.store.call(&caller.scope, &id).await?;
    if call.ended_at_ms.is_some() {
        return Err(Problem::conflict("the call has already ended"));
    }
    let edge_id = call.edge_id.clone().unwrap_or_default();
    let command = EdgeCommand {
        id: new_id(),
        command: Some(Command::HangupCall(HangupCall {
            call_id: call.id.clone(),
        })),
    };
    // Through whichever replica holds the edge's stream; a call that ended meanwhile is moot.
    state
        .relay
        .deliver(&edge_id, command, Some(&call.id))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(call.into())))
}
