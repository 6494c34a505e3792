//! What the edge's call events say, as metrics: the one place every event a call writes passes
//! (the publisher, before the spool) hands each to a [`CallObserver`], which turns it into
//! setup time, failures and endings by reason, voice-to-voice per region and agent, RTP loss,
//! lateness and jitter, and the jitter buffer's depth. No call id is ever a label: the observer
//! keeps a small per-call note (start time, agent label) only while the call lives.
//!
//! The agent label is bounded: the first [`AgentLabels::limit`] agents seen get their own
//! label, every later one is counted as `other`, so a workspace that creates agents by the
//! thousand cannot grow `/metrics` without end.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use freya_shared::model::{CallEvent, CallEventData};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::headroom::LatencyWindow;

/// Labels of the metrics below: `(name, value)` pairs, each value from a bounded set.
pub(crate) type Labels = Vec<(String, String)>;

/// A family of histograms made with the same buckets.
pub(crate) type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The label an agent's calls are counted under: its id, for the first `limit` agents seen.
pub(crate) struct AgentLabels {
    limit: usize,
    seen: HashSet<String>,
}

impl AgentLabels {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            seen: HashSet::new(),
        }
    }

    /// `agent` itself while fewer than `limit` agents have a label, else `other`.
    pub(crate) fn label(&mut self, agent: &str) -> String {
        if self.seen.contains(agent) {
            return agent.to_owned();
        }
        if self.seen.len() < self.limit {
            self.seen.insert(agent.to_owned());
            return agent.to_owned();
        }
        "other".to_owned()
    }
}

/// The metric handles the observer writes (clones of those the edge's registry serves).
#[derive(Clone)]
pub(crate) struct CallMetrics {
    pub setup: Histogram,
    pub failed: Family<Labels, Counter>,
    pub ended: Family<Labels, Counter>,
    pub voice_to_voice: HistogramFamily,
    pub rtp_lost: Counter,
    pub rtp_late: Counter,
    pub rtp_jitter: Histogram,
    pub jitter_buffer: Histogram,
    /// Recent voice-to-voice figures, for the headroom gauge.
    pub recent_v2v: Arc<Mutex<LatencyWindow>>,
}

/// A call the observer has seen start.
struct Noted {
    started_at_ms: i64,
    agent: String,
    answered: bool,
}

/// Turns a stream of call events into metrics (see the module's paragraph).
pub(crate) struct CallObserver {
    metrics: CallMetrics,
    region: String,
    agents: AgentLabels,
    calls: HashMap<String, Noted>,
}

/// Most calls noted at once; past it (events of calls whose end never came) the oldest notes
/// are forgotten rather than grow without bound.
const MAX_NOTED: usize = 100_000;

impl CallObserver {
    pub(crate) fn new(metrics: CallMetrics, region: &str, agent_label_limit: usize) -> Self {
        Self {
            metrics,
            region: region.to_owned(),
            agents: AgentLabels::new(agent_label_limit),
            calls: HashMap::new(),
        }
    }

    /// Counts what `event` says.
    pub(crate) fn observe(&mut self, event: &CallEvent) {
        match event.data() {
            CallEventData::Started(started) => {
                if self.calls.len() >= MAX_NOTED {
                    self.calls.clear();
                }
                let agent = started
                    .agent_id
                    .flatten()
                    .or_else(|| started.workflow_id.flatten())
                    .unwrap_or_default();
                let agent = self.agents.label(&agent);
                self.calls.entry(event.call_id.clone()).or_insert(Noted {
                    started_at_ms: event.at_ms,
                    agent,
                    answered: false,
                });
            }
            CallEventData::Answered(_) => {
                if let Some(noted) = self.calls.get_mut(&event.call_id) {
                    if !noted.answered {
                        noted.answered = true;
                        let ms = event.at_ms.saturating_sub(noted.started_at_ms).max(0);
                        self.metrics.setup.observe(ms as f64 / 1000.0);
                    }
                }
            }
            CallEventData::TurnLatency(latency) => {
                let Some(ms) = latency.first_rtp_ms else {
                    return;
                };
                let agent = self
                    .calls
                    .get(&event.call_id)
                    .map_or_else(|| "unknown".to_owned(), |n| n.agent.clone());
                let labels = vec![
                    ("region".to_owned(), self.region.clone()),
                    ("agent".to_owned(), agent),
                ];
                self.metrics
                    .voice_to_voice
                    .get_or_create(&labels)
                    .observe(ms as f64 / 1000.0);
                if let Ok(mut window) = self.metrics.recent_v2v.lock() {
                    window.push(std::time::Instant::now(), Duration::from_millis(ms));
                }
            }
            CallEventData::Failed(failed) => {
                let reason = failed.reason.as_ref().map_or("unknown", |r| r.as_str());
                let labels = vec![("reason".to_owned(), bounded(reason))];
                self.metrics.failed.get_or_create(&labels).inc();
                self.calls.remove(&event.call_id);
            }
            CallEventData::Ended(ended) => {
                let reason = ended.reason.as_ref().map_or("unknown", |r| r.as_str());
                let labels = vec![("reason".to_owned(), bounded(reason))];
                self.metrics.ended.get_or_create(&labels).inc();
                if let Some(rtp) = &ended.rtp {
                    self.metrics.rtp_lost.inc_by(rtp.lost);
                    self.metrics.rtp_late.inc_by(rtp.late);
                    if rtp.received > 0 {
                        self.metrics
                            .rtp_jitter
                            .observe(rtp.jitter_ms as f64 / 1000.0);
                    }
                    if let Some(buffer_ms) = rtp.jitter_buffer_ms {
                        self.metrics
                            .jitter_buffer
                            .observe(buffer_ms as f64 / 1000.0);
                    }
                }
                self.calls.remove(&event.call_id);
            }
            _ => {}
        }
    }
}

/// A reason word as a label: ours are snake_case words from a fixed list; anything else (which
/// only a newer schema could write) is `other`.
fn bounded(reason: &str) -> String {
    let ok = !reason.is_empty()
        && reason.len() <= 40
        && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok { reason } else { "other" }.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use freya_shared::model::call_payloads::{
        CallAnswered, CallEnded, CallFailed, CallStarted, RtpRecord, TurnLatency,
    };
    use freya_shared::model::{EndReason, FailReason};

    fn metrics() -> CallMetrics {
        CallMetrics {
            setup: Histogram::new([0.5, 1.0, 5.0]),
            failed: Family::default(),
            ended: Family::default(),
            voice_to_voice: HistogramFamily::new_with_constructor(|| {
                Histogram::new([0.5, 1.0, 2.0])
            }),
            rtp_lost: Counter::default(),
            rtp_late: Counter::default(),
            rtp_jitter: Histogram::new([0.01, 0.1]),
            jitter_buffer: Histogram::new([0.02, 0.1]),
            recent_v2v: Arc::default(),
        }
    }

    fn event(call: &str, at_ms: i64, data: CallEventData) -> CallEvent {
        let mut e = CallEvent::new(call, "ws", data);
        e.at_ms = at_ms;
        e
    }

    fn started(call: &str, agent: &str) -> CallEvent {
        let data = CallEventData::Started(CallStarted {
            agent_id: Some(Some(agent.to_owned())),
            ..CallStarted::default()
        });
        event(call, 1_000, data)
    }

    fn turn(call: &str, ms: u64) -> CallEvent {
        let data = CallEventData::TurnLatency(TurnLatency {
            endpointing_ms: 0,
            stt_ms: None,
            llm_first_token_ms: None,
            tts_first_byte_ms: None,
            first_rtp_ms: Some(ms),
            extra: Default::default(),
        });
        event(call, 2_000, data)
    }

    /// The text exposition of `metric` registered as `name`.
    fn text<M>(name: &str, metric: M) -> String
    where
        M: prometheus_client::registry::Metric,
    {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register(name, "", metric);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        text
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn agents_past_the_limit_share_the_other_label_and_no_call_id_is_a_label() {
        let m = metrics();
        let mut observer = CallObserver::new(m.clone(), "eu", 2);
        for (call, agent) in [("c1", "a1"), ("c2", "a2"), ("c3", "a3"), ("c4", "a4")] {
            observer.observe(&started(call, agent));
            observer.observe(&turn(call, 800));
        }
        let text = text("v2v_seconds", m.voice_to_voice.clone());
        for (agent, count) in [("a1", 1), ("a2", 1), ("other", 2)] {
            let line = format!("v2v_seconds_count{{region=\"eu\",agent=\"{agent}\"}} {count}");
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        assert!(!text.contains("a3") && !text.contains("c1"), "{text}");
        assert_eq!(m.recent_v2v.lock().unwrap().len(), 4);
    }

    #[test]
    fn setup_failures_endings_and_rtp_are_counted_once_per_call() {
        let m = metrics();
        let mut observer = CallObserver::new(m.clone(), "eu", 10);
        observer.observe(&started("c1", "a1"));
        let answered = event(
            "c1",
            1_400,
            CallEventData::Answered(CallAnswered::default()),
        );
        observer.observe(&answered);
        observer.observe(&answered);
        let setup = text("setup_seconds", m.setup.clone());
        assert!(setup.contains("setup_seconds_count 1\n"), "{setup}");
        assert!(setup.contains("setup_seconds_sum 0.4\n"), "{setup}");
        let ended = CallEnded {
            rtp: Some(RtpRecord {
                received: 100,
                sent: 100,
                lost: 3,
                late: 2,
                junk: 0,
                foreign: 0,
                jitter_ms: 4,
                jitter_buffer_ms: Some(60),
                extra: Default::default(),
            }),
            ..CallEnded::because(EndReason::parse("caller_hangup"))
        };
        observer.observe(&event("c1", 9_000, CallEventData::Ended(ended)));
        let failed = CallFailed::because(FailReason::parse("no_common_codec"));
        observer.observe(&event("c2", 9_000, CallEventData::Failed(failed)));
        let odd = CallFailed::because(FailReason::parse("Weird Reason {1}"));
        observer.observe(&event("c3", 9_000, CallEventData::Failed(odd)));
        assert_eq!(m.rtp_lost.get(), 3);
        assert_eq!(m.rtp_late.get(), 2);
        let buffer = text("buffer_seconds", m.jitter_buffer.clone());
        assert!(buffer.contains("buffer_seconds_sum 0.06\n"), "{buffer}");
        let reason = |r: &str| labels(&[("reason", r)]);
        assert_eq!(m.ended.get_or_create(&reason("caller_hangup")).get(), 1);
        assert_eq!(m.failed.get_or_create(&reason("no_common_codec")).get(), 1);
        assert_eq!(m.failed.get_or_create(&reason("other")).get(), 1);
        assert!(observer.calls.is_empty(), "ended calls are forgotten");
    }
}
