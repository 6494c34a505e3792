//! Call analytics: SQL aggregates over the `calls` summary rows of one workspace and time range,
//! read through the `(workspace_id, started_at_ms)` index. Buckets are portable integer division
//! of `started_at_ms` by the interval (no engine-specific date functions), so SQLite, PostgreSQL
//! and CockroachDB agree to the millisecond. Voice-to-voice percentiles come from the hourly
//! latency histogram that `call_usage` keeps, so they cover whole hours of call starts. Time to
//! answer and ring time are counted by the database into 100 ms bins per bucket.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::call_usage::quantile_ms;
use super::{Store, StoreError, WorkspaceScope};

/// What the calls of a bucket are grouped by, besides time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyticsGroup {
    None,
    Agent,
    /// Our number: the called one for inbound calls, the calling one for outbound.
    Number,
    /// The region of the edge that carried the call (kept on the call when it started).
    Region,
}

impl AnalyticsGroup {
    fn column(self) -> &'static str {
        match self {
            AnalyticsGroup::None => "CAST(NULL AS TEXT)",
            AnalyticsGroup::Agent => "c.agent_id",
            AnalyticsGroup::Number => {
                "CASE WHEN c.direction = 'outbound' THEN c.from_number ELSE c.to_number END"
            }
            // Calls recorded before calls kept their region fall back to their edge's.
            AnalyticsGroup::Region => "COALESCE(c.region, e.region)",
        }
    }

    /// The same grouping over the hourly latency histogram (where "none" is stored as '').
    fn histogram_column(self) -> &'static str {
        match self {
            AnalyticsGroup::None => "CAST(NULL AS TEXT)",
            AnalyticsGroup::Agent => "NULLIF(agent_id, '')",
            AnalyticsGroup::Number => "NULLIF(number, '')",
            AnalyticsGroup::Region => "NULLIF(region, '')",
        }
    }
}

/// A bucket's start and group.
type BucketKey = (i64, Option<String>);

/// Which calls to aggregate.
#[derive(Debug, Clone)]
pub struct AnalyticsQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub interval_ms: i64,
    pub group: AnalyticsGroup,
}

/// The aggregates of one (bucket, group).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallBucket {
    pub start_ms: i64,
    pub group: Option<String>,
    pub calls: i64,
    pub answered: i64,
    /// Calls with both an answer and an end time: what durations are averaged over.
    pub completed: i64,
    pub total_duration_ms: i64,
    /// How many calls ended for each reason (`status` when no reason was given).
    pub outcomes: BTreeMap<String, i64>,
    pub usage: CallUsage,
    /// `None` when no reply of the bucket's calls reached the caller.
    pub voice_to_voice: Option<LatencySummary>,
    /// INVITE (or dial) to answer of the bucket's answered calls: ringing, plus a placed call's
    /// failed attempts; `None` when none was answered.
    pub time_to_answer: Option<AnswerTimes>,
    /// Ringing to answer, or to the end of a call that rang and was never answered (cancelled,
    /// unanswered); `None` when no call of the bucket rang.
    pub ring_time: Option<AnswerTimes>,
}

/// Percentiles of a wait before the answer: from a call's start (its INVITE, or our dial), or
/// from its ringing, to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerTimes {
    pub calls: i64,
    pub p50_ms: i64,
    pub p95_ms: i64,
}

/// What the calls of a bucket used: the quantities that providers bill by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallUsage {
    /// Answer-to-end time, each call rounded up to whole minutes (how carriers bill).
    pub billable_minutes: i64,
    /// Agent replies (a language-model turn each).
    pub agent_turns: i64,
    /// The caller's speech that went to recognition.
    pub caller_speech_ms: i64,
    /// The characters of the agent's transcript lines, a cut line's closing dash included
    /// (kept for older readers: `agent_characters_played` plus one per line cut off).
    pub agent_characters: i64,
    /// Characters the agent spoke that the caller heard.
    pub agent_characters_played: i64,
    /// Characters sent to speech synthesis, heard or not (what a TTS provider bills); a call
    /// whose edge did not count them (an older edge, a call still live) adds its played ones.
    pub agent_characters_synthesized: i64,
}

/// Voice-to-voice latency of the agent's replies: end of the caller's speech to the first
/// packet of the reply, as the edge saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    pub turns: i64,
    pub p50_ms: i64,
    pub p95_ms: i64,
}

impl Store {
    /// The rows of an analytics query `sql` for `scope`'s calls: `$1` is the workspace, `$2` and
    /// `$3` the window (from `from_ms`, which may start earlier than `q`'s), `$4` the bucket
    /// width; read from the read pool.
    async fn bucket_rows(
        &self,
        sql: &str,
        scope: &WorkspaceScope,
        from_ms: i64,
        q: &AnalyticsQuery,
    ) -> Result<Vec<AnyRow>, StoreError> {
        Ok(sqlx::query(sql)
            .bind(&scope.workspace_id)
            .bind(from_ms)
            .bind(q.to_ms)
            .bind(q.interval_ms)
            .fetch_all(self.read_pool())
            .await?)
    }

    /// The scoped workspace's calls started in `[from_ms, to_ms)`, aggregated per bucket and group.
    pub async fn call_analytics(
        &self,
        scope: &WorkspaceScope,
        q: &AnalyticsQuery,
    ) -> Result<Vec<CallBucket>, StoreError> {
        let group = q.group.column();
        let from = "FROM calls c LEFT JOIN edges e ON e.id = c.edge_id \
                    WHERE c.workspace_id = $1 AND c.started_at_ms >= $2 AND c.started_at_ms < $3";
        let sql = format!(
            "SELECT (c.started_at_ms / $4) * $4 AS bucket, {group} AS grp, COUNT(*) AS calls, \
             CAST(SUM(CASE WHEN c.answered_at_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
             CAST(SUM(CASE WHEN c.answered_at_ms IS NOT NULL AND c.ended_at_ms IS NOT NULL \
                  THEN 1 ELSE 0 END) AS BIGINT) AS completed, \
             CAST(SUM(CASE WHEN c.answered_at_ms IS NOT NULL AND c.ended_at_ms IS NOT NULL \
                  THEN c.ended_at_ms - c.answered_at_ms ELSE 0 END) AS BIGINT) AS total_ms, \
             CAST(SUM(CASE WHEN c.answered_at_ms IS NOT NULL AND c.ended_at_ms IS NOT NULL \
                  THEN (c.ended_at_ms - c.answered_at_ms + 59999) / 60000 ELSE 0 END) AS BIGINT) AS minutes, \
             CAST(SUM(c.agent_turns) AS BIGINT) AS turns, \
             CAST(SUM(c.caller_speech_ms) AS BIGINT) AS speech_ms, \
             CAST(SUM(c.agent_characters) AS BIGINT) AS characters, \
             CAST(SUM(c.agent_characters_played) AS BIGINT) AS played, \
             CAST(SUM(COALESCE(c.agent_characters_synthesized, c.agent_characters_played)) \
                  AS BIGINT) AS synthesized \
             {from} GROUP BY 1, 2"
        );
        let totals = self.bucket_rows(&sql, scope, q.from_ms, q).await?;
        let mut buckets: BTreeMap<BucketKey, CallBucket> = BTreeMap::new();
        for row in &totals {
            let start_ms: i64 = row.try_get("bucket")?;
            let group: Option<String> = row.try_get("grp")?;
            buckets.insert(
                (start_ms, group.clone()),
                CallBucket {
                    start_ms,
                    group,
                    calls: row.try_get("calls")?,
                    answered: row.try_get("answered")?,
                    completed: row.try_get("completed")?,
                    total_duration_ms: row.try_get("total_ms")?,
                    outcomes: BTreeMap::new(),
                    usage: CallUsage {
                        billable_minutes: row.try_get("minutes")?,
                        agent_turns: row.try_get("turns")?,
                        caller_speech_ms: row.try_get("speech_ms")?,
                        agent_characters: row.try_get("characters")?,
                        agent_characters_played: row.try_get("played")?,
                        agent_characters_synthesized: row.try_get("synthesized")?,
                    },
                    voice_to_voice: None,
                    time_to_answer: None,
                    ring_time: None,
                },
            );
        }
        let sql = format!(
            "SELECT (c.started_at_ms / $4) * $4 AS bucket, {group} AS grp, \
             COALESCE(c.end_reason, c.status) AS outcome, COUNT(*) AS calls \
             {from} AND c.ended_at_ms IS NOT NULL GROUP BY 1, 2, 3"
        );
        let outcomes = self.bucket_rows(&sql, scope, q.from_ms, q).await?;
        for row in &outcomes {
            let key = (row.try_get("bucket")?, row.try_get("grp")?);
            if let Some(bucket) = buckets.get_mut(&key) {
                bucket
                    .outcomes
                    .insert(row.try_get("outcome")?, row.try_get("calls")?);
            }
        }
        self.add_latency(scope, q, &mut buckets).await?;
        self.add_answer_times(scope, q, &mut buckets).await?;
        Ok(buckets.into_values().collect())
    }

    /// Fills in each bucket's time-to-answer and ring-time percentiles.
    async fn add_answer_times(
        &self,
        scope: &WorkspaceScope,
        q: &AnalyticsQuery,
        buckets: &mut BTreeMap<BucketKey, CallBucket>,
    ) -> Result<(), StoreError> {
        let to_answer = self
            .wait_histograms(scope, q, "c.started_at_ms", "c.answered_at_ms")
            .await?;
        for (key, mut bins) in to_answer {
            if let Some(bucket) = buckets.get_mut(&key) {
                bucket.time_to_answer = answer_times(&mut bins);
            }
        }
        // A call that rang and was never answered rang until it ended.
        let ringing = self
            .wait_histograms(
                scope,
                q,
                "c.ringing_at_ms",
                "COALESCE(c.answered_at_ms, c.ended_at_ms)",
            )
            .await?;
        for (key, mut bins) in ringing {
            if let Some(bucket) = buckets.get_mut(&key) {
                bucket.ring_time = answer_times(&mut bins);
            }
        }
        Ok(())
    }

    /// Per bucket, a histogram the database counts of the wait from `from` to `to` (SQL over
    /// `calls c`; calls where either is NULL are left out): 100 ms bins, the last one holding
    /// everything from 10 minutes up, so the rows read are bounded by the bins in use, not by
    /// the calls.
    async fn wait_histograms(
        &self,
        scope: &WorkspaceScope,
        q: &AnalyticsQuery,
        from: &str,
        to: &str,
    ) -> Result<BTreeMap<BucketKey, Vec<(i64, i64)>>, StoreError> {
        let sql = format!(
            "SELECT (c.started_at_ms / $4) * $4 AS bucket, {} AS grp, \
             CASE WHEN {to} - {from} > {ANSWER_BINS} * {ANSWER_BIN_MS} THEN {ANSWER_BINS} \
                  WHEN {to} < {from} THEN 0 \
                  ELSE ({to} - {from}) / {ANSWER_BIN_MS} END AS bin, \
             COUNT(*) AS calls \
             FROM calls c LEFT JOIN edges e ON e.id = c.edge_id \
             WHERE c.workspace_id = $1 AND c.started_at_ms >= $2 AND c.started_at_ms < $3 \
             AND {from} IS NOT NULL AND {to} IS NOT NULL GROUP BY 1, 2, 3",
            q.group.column()
        );
        let rows = self.bucket_rows(&sql, scope, q.from_ms, q).await?;
        histograms(&rows, "calls")
    }

    /// Fills in each bucket's voice-to-voice percentiles from the hourly histogram.
    async fn add_latency(
        &self,
        scope: &WorkspaceScope,
        q: &AnalyticsQuery,
        buckets: &mut BTreeMap<BucketKey, CallBucket>,
    ) -> Result<(), StoreError> {
        let hour_ms = 3_600_000;
        let sql = format!(
            "SELECT (hour_ms / $4) * $4 AS bucket, {} AS grp, bin, \
             CAST(SUM(turns) AS BIGINT) AS turns FROM turn_latency_hourly \
             WHERE workspace_id = $1 AND hour_ms >= $2 AND hour_ms < $3 GROUP BY 1, 2, 3",
            q.group.histogram_column()
        );
        let rows = self
            .bucket_rows(&sql, scope, q.from_ms - q.from_ms.rem_euclid(hour_ms), q)
            .await?;
        for (key, mut bins) in histograms(&rows, "turns")? {
            let Some(bucket) = buckets.get_mut(&key) else {
                continue;
            };
            let turns = bins.iter().map(|(_, n)| n).sum();
            let p50 = quantile_ms(&mut bins, 0.50);
            let p95 = quantile_ms(&mut bins, 0.95);
            if let (Some(p50_ms), Some(p95_ms)) = (p50, p95) {
                bucket.voice_to_voice = Some(LatencySummary {
                    turns,
                    p50_ms,
                    p95_ms,
                });
            }
        }
        Ok(())
    }
}

/// Rows of `(bucket, grp, bin, <count>)` gathered into one histogram, `(bin, count)`, per
/// bucket and group: the shape both the time-to-answer and the voice-to-voice queries return.
fn histograms(
    rows: &[sqlx::any::AnyRow],
    count: &str,
) -> Result<BTreeMap<BucketKey, Vec<(i64, i64)>>, StoreError> {
    let mut histograms: BTreeMap<BucketKey, Vec<(i64, i64)>> = BTreeMap::new();
    for row in rows {
        histograms
            .entry((row.try_get("bucket")?, row.try_get("grp")?))
            .or_default()
            .push((row.try_get("bin")?, row.try_get(count)?));
    }
    Ok(histograms)
}

/// Width of a time-to-answer (or ring-time) bin.
const ANSWER_BIN_MS: i64 = 100;
/// Time-to-answer bins: 10 minutes of them; the last one holds every longer wait.
const ANSWER_BINS: i64 = 6_000;

/// Nearest-rank p50 and p95 of a time-to-answer histogram, `(bin, calls)` in any order; each
/// read as its bin's middle. `None` when empty.
fn answer_times(bins: &mut [(i64, i64)]) -> Option<AnswerTimes> {
    bins.sort_unstable();
    let total: i64 = bins.iter().map(|(_, n)| n).sum();
    let rank = |q: f64| {
        // Nearest rank: the ceil(q * total)-th call, 1-based.
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let wanted = ((q * total as f64).ceil() as i64).max(1);
        let mut seen = 0;
        bins.iter().find_map(|&(bin, n)| {
            seen += n;
            (seen >= wanted).then_some(bin * ANSWER_BIN_MS + ANSWER_BIN_MS / 2)
        })
    };
    if total <= 0 {
        return None;
    }
    Some(AnswerTimes {
        calls: total,
        p50_ms: rank(0.50)?,
        p95_ms: rank(0.95)?,
    })
}

#[cfg(test)]
mod tests {
    use super::answer_times;

    #[test]
    fn answer_time_percentiles_are_nearest_rank_over_100_ms_bins() {
        assert_eq!(answer_times(&mut []), None);
        // 20 calls, one in each of the bins 1..=20 (100 ms to 2 s).
        let mut bins: Vec<(i64, i64)> = (1..=20).rev().map(|b| (b, 1)).collect();
        let times = answer_times(&mut bins).expect("times");
        assert_eq!(
            (times.calls, times.p50_ms, times.p95_ms),
            (20, 1_050, 1_950)
        );
        let mut one = vec![(20, 3)];
        let times = answer_times(&mut one).expect("times");
        assert_eq!((times.calls, times.p50_ms, times.p95_ms), (3, 2_050, 2_050));
    }
}
