//! Call analytics: SQL aggregates over the `calls` summary rows of one workspace and time range,
//! read through the `(workspace_id, started_at_ms)` index. Buckets are portable integer division
//! of `started_at_ms` by the interval (no engine-specific date functions), so SQLite, PostgreSQL
//! and CockroachDB agree to the millisecond.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Store, StoreError, WorkspaceScope};

/// What the calls of a bucket are grouped by, besides time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyticsGroup {
    None,
    Agent,
    /// Our number: the called one for inbound calls, the calling one for outbound.
    Number,
    /// The region of the edge that carried the call.
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
            AnalyticsGroup::Region => "e.region",
        }
    }
}

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
}

impl Store {
    /// The scoped workspace's calls started in `[from_ms, to_ms)`, aggregated per bucket and group.
    pub async fn call_analytics(
        &self,
        scope: &WorkspaceScope,
        q: &AnalyticsQuery,
    ) -> Result<Vec<CallBucket>, StoreError> {
        let group = q.group.column();
        let from = "FROM calls c LEFT JOIN edges e ON e.id = c.edge_id \
                    WHERE c.workspace_id = $1 AND c.started_at_ms >= $2 AND c.started_at_ms < $3";
        let totals = sqlx::query(&format!(
            "SELECT (c.started_at_ms / $4) * $4 AS bucket, {group} AS grp, COUNT(*) AS calls, \
             CAST(SUM(CASE WHEN c.answered_at_ms IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS answered, \
             CAST(SUM(CASE WHEN c.answered_at_ms IS NOT NULL AND c.ended_at_ms IS NOT NULL \
                  THEN 1 ELSE 0 END) AS BIGINT) AS completed, \
             CAST(SUM(CASE WHEN c.answered_at_ms IS NOT NULL AND c.ended_at_ms IS NOT NULL \
                  THEN c.ended_at_ms - c.answered_at_ms ELSE 0 END) AS BIGINT) AS total_ms \
             {from} GROUP BY 1, 2"
        ))
        .bind(&scope.workspace_id)
        .bind(q.from_ms)
        .bind(q.to_ms)
        .bind(q.interval_ms)
        .fetch_all(self.pool())
        .await?;
        let mut buckets: BTreeMap<(i64, Option<String>), CallBucket> = BTreeMap::new();
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
                },
            );
        }
        let outcomes = sqlx::query(&format!(
            "SELECT (c.started_at_ms / $4) * $4 AS bucket, {group} AS grp, \
             COALESCE(c.end_reason, c.status) AS outcome, COUNT(*) AS calls \
             {from} AND c.ended_at_ms IS NOT NULL GROUP BY 1, 2, 3"
        ))
        .bind(&scope.workspace_id)
        .bind(q.from_ms)
        .bind(q.to_ms)
        .bind(q.interval_ms)
        .fetch_all(self.pool())
        .await?;
        for row in &outcomes {
            let key = (row.try_get("bucket")?, row.try_get("grp")?);
            if let Some(bucket) = buckets.get_mut(&key) {
                bucket
                    .outcomes
                    .insert(row.try_get("outcome")?, row.try_get("calls")?);
            }
        }
        Ok(buckets.into_values().collect())
    }
}
