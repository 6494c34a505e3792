//! Folds the events that describe what a call used — agent replies with their voice-to-voice
//! latency, the caller's recognised speech, the agent's words as heard (transcript lines) and as
//! synthesized (counted by the edge, in `call.ended`) — into the call's usage
//! columns and the hourly latency histogram, in the transaction that stores the event, so
//! analytics read sums and a few histogram rows rather than every event of every call.

use sqlx::Row;

use super::columns::from_columns;
use super::StoreError;
use freya_shared::model::call_payloads::{Transcript, TurnLatency};
use freya_shared::model::{CallEvent, CallEventData};

/// What one call used, as its row says: the figures a bill for the call is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CallUsageRecord {
    /// Agent replies (a language-model turn each).
    pub agent_turns: i64,
    /// The caller's speech that went to recognition.
    pub caller_speech_ms: i64,
    /// The characters of the agent's transcript lines, a cut line's closing dash included
    /// (`agent_characters_played` plus one per line cut off); kept for older readers.
    pub agent_characters: i64,
    /// The agent's characters the caller heard.
    pub agent_characters_played: i64,
    /// Every character sent to speech synthesis, heard or not (what a TTS provider bills);
    /// `None` until the call has ended, for a call never answered (no voice ran: nothing was
    /// synthesized), and for calls of an edge that did not count it.
    pub agent_characters_synthesized: Option<i64>,
}

/// A call's usage from a row of `calls` with its usage columns (`agent_turns`,
/// `caller_speech_ms`, `agent_characters`, `agent_characters_played`,
/// `agent_characters_synthesized`).
pub(super) fn usage_from_row(r: &sqlx::any::AnyRow) -> Result<CallUsageRecord, StoreError> {
    Ok(from_columns!(r => CallUsageRecord {
        agent_turns, caller_speech_ms, agent_characters, agent_characters_played,
        agent_characters_synthesized,
    }))
}

const HOUR_MS: i64 = 3_600_000;
/// Each latency bin is 4 % wider than the one below it, so a percentile read from the bins is
/// within about 2 % of the exact one, whatever the scale (20 ms or 20 s).
const BIN_GROWTH: f64 = 1.04;

/// The histogram bin of a latency.
pub(super) fn latency_bin(ms: u64) -> i64 {
    // Latencies are far below 2^52 ms, where f64 stops being exact.
    ((ms as f64 + 1.0).ln() / BIN_GROWTH.ln()).floor() as i64
}

/// The latency a bin stands for: its geometric middle.
pub(super) fn bin_latency_ms(bin: i64) -> i64 {
    ((bin as f64 + 0.5) * BIN_GROWTH.ln()).exp().round() as i64 - 1
}

/// The `quantile` (0..=1) of a histogram given as `(bin, turns)` pairs in any order.
pub(super) fn quantile_ms(bins: &mut [(i64, i64)], quantile: f64) -> Option<i64> {
    bins.sort_unstable();
    let total: i64 = bins.iter().map(|(_, n)| n).sum();
    if total <= 0 {
        return None;
    }
    // The nearest-rank definition: the smallest value with at least `quantile` of turns at or
    // below it.
    let rank = ((quantile * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    for &(bin, turns) in bins.iter() {
        seen += turns;
        if seen >= rank {
            return Some(bin_latency_ms(bin));
        }
    }
    None
}

/// Folds `event` (newly stored, read as `data`) into its call's usage; events of other kinds
/// change nothing.
pub(super) async fn fold_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &CallEvent,
    data: &CallEventData,
) -> Result<(), StoreError> {
    match data {
        CallEventData::TurnLatency(latency) => fold_reply(tx, event, latency).await,
        CallEventData::Transcript(line) => match line.role.as_str() {
            "caller" => {
                let speech_ms = line.end_ms.saturating_sub(line.start_ms);
                add_to_call(tx, event, &[("caller_speech_ms", speech_ms)]).await
            }
            "agent" => {
                let written = line.text.chars().count() as u64;
                let played = played_chars(line);
                let columns = [
                    ("agent_characters", written),
                    ("agent_characters_played", played),
                ];
                add_to_call(tx, event, &columns).await
            }
            _ => Ok(()),
        },
        CallEventData::Ended(ended) => {
            // An older edge does not count synthesis: the column stays NULL (unknown).
            let Some(synthesized) = ended.agent_characters_synthesized else {
                return Ok(());
            };
            sqlx::query(
                "UPDATE calls SET agent_characters_synthesized = $1 \
                 WHERE id = $2 AND workspace_id = $3",
            )
            .bind(i64::try_from(synthesized).unwrap_or(i64::MAX))
            .bind(&event.call_id)
            .bind(&event.workspace_id)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Adds each amount to its column of the event's call.
async fn add_to_call(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &CallEvent,
    columns: &[(&str, u64)],
) -> Result<(), StoreError> {
    let set: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{column} = {column} + ${}", i + 1))
        .collect();
    let n = columns.len();
    let sql = format!(
        "UPDATE calls SET {} WHERE id = ${} AND workspace_id = ${}",
        set.join(", "),
        n + 1,
        n + 2
    );
    let mut query = sqlx::query(&sql);
    for (_, amount) in columns {
        query = query.bind(i64::try_from(*amount).unwrap_or(i64::MAX));
    }
    query
        .bind(&event.call_id)
        .bind(&event.workspace_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The characters of an agent line the caller heard: all of them, less the dash that closes a
/// line cut off (a barge-in, a hang-up), which was never said.
fn played_chars(line: &Transcript) -> u64 {
    let chars = line.text.chars().count() as u64;
    if line.interrupted && line.text.ends_with(CUT_MARK) {
        chars - 1
    } else {
        chars
    }
}

/// How the edge marks where an agent line was cut off.
const CUT_MARK: char = '\u{2014}';

/// One agent reply: counted on the call, and its voice-to-voice latency (end of the caller's
/// speech to the first RTP packet of the reply) added to the hour's histogram.
async fn fold_reply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    event: &CallEvent,
    reply: &TurnLatency,
) -> Result<(), StoreError> {
    let call = sqlx::query(
        "SELECT c.started_at_ms, c.agent_id, \
         CASE WHEN c.direction = 'outbound' THEN c.from_number ELSE c.to_number END AS number, \
         COALESCE(c.region, e.region) AS region FROM calls c LEFT JOIN edges e ON e.id = c.edge_id \
         WHERE c.id = $1 AND c.workspace_id = $2",
    )
    .bind(&event.call_id)
    .bind(&event.workspace_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(call) = call else {
        tracing::warn!(call = %event.call_id, "a reply of a call with no record; not counted");
        return Ok(());
    };
    sqlx::query("UPDATE calls SET agent_turns = agent_turns + 1 WHERE id = $1")
        .bind(&event.call_id)
        .execute(&mut **tx)
        .await?;
    // A reply the caller never heard (cut off before its first packet) has no latency.
    let Some(latency) = reply.first_rtp_ms else {
        return Ok(());
    };
    let started_at_ms: i64 = call.try_get("started_at_ms")?;
    let text = |name: &str| -> Result<String, StoreError> {
        Ok(call.try_get::<Option<String>, _>(name)?.unwrap_or_default())
    };
    sqlx::query(
        "INSERT INTO turn_latency_hourly (workspace_id, hour_ms, agent_id, number, region, bin, turns) \
         VALUES ($1, $2, $3, $4, $5, $6, 1) \
         ON CONFLICT (workspace_id, hour_ms, agent_id, number, region, bin) \
         DO UPDATE SET turns = turn_latency_hourly.turns + 1",
    )
    .bind(&event.workspace_id)
    .bind(started_at_ms - started_at_ms.rem_euclid(HOUR_MS))
    .bind(text("agent_id")?)
    .bind(text("number")?)
    .bind(text("region")?)
    .bind(latency_bin(latency))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bin_stands_for_latencies_within_two_percent() {
        for ms in [1u64, 20, 100, 480, 555, 1_000, 7_300, 60_000] {
            let back = bin_latency_ms(latency_bin(ms)) as f64;
            let error = (back - ms as f64).abs() / (ms as f64 + 1.0);
            assert!(error <= 0.021, "{ms} ms comes back as {back}");
        }
        assert!(latency_bin(500) < latency_bin(530));
    }

    #[test]
    fn a_line_cut_off_does_not_count_its_dash_as_played() {
        let line = |text: &str, interrupted| Transcript {
            role: "agent".to_owned(),
            text: text.to_owned(),
            start_ms: 0,
            end_ms: 0,
            interrupted,
            extra: Default::default(),
        };
        assert_eq!(played_chars(&line("We open at—", true)), 10);
        assert_eq!(played_chars(&line("We open at nine.", false)), 16);
        // A dash the model wrote, in a line played to the end, was said.
        assert_eq!(played_chars(&line("Nine—ish", false)), 8);
    }

    #[test]
    fn quantiles_follow_the_nearest_rank() {
        // 90 turns near 500 ms, 10 near 900 ms.
        let mut bins = vec![(latency_bin(900), 10), (latency_bin(500), 90)];
        let p50 = quantile_ms(&mut bins, 0.5).expect("p50");
        let p95 = quantile_ms(&mut bins, 0.95).expect("p95");
        assert!((490..=510).contains(&p50), "{p50}");
        assert!((882..=918).contains(&p95), "{p95}");
        assert_eq!(quantile_ms(&mut [], 0.5), None);
    }
}
