//! The run's figures: every call's report folded into distributions (setup, time to first
//! audio, voice-to-voice, jitter, packet inter-arrival), failures by reason, and a timeline of
//! calls and of the edge's CPU and memory, second by second. [`Summary::metric`] names each
//! headline figure, which is what `--fail-if` thresholds refer to.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::edge_metrics::EdgeDeparture;
use crate::stream::new_gap_histogram;
use crate::uac::CallReport;

/// Percentiles of one measured quantity, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distribution {
    /// Values measured.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// The sorted values, for CDF plots.
    #[serde(skip)]
    pub sorted: Vec<f64>,
}

impl Distribution {
    /// The distribution of `values` (any order).
    pub fn of(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        values.sort_by(f64::total_cmp);
        let count = values.len();
        if count == 0 {
            return Self::default();
        }
        let q = |p: f64| values[((p * count as f64).ceil() as usize).clamp(1, count) - 1];
        Self {
            count,
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
            max: values[count - 1],
            mean: values.iter().sum::<f64>() / count as f64,
            sorted: values,
        }
    }

    /// Percentiles of a histogram of microseconds.
    pub fn of_micros(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        let sorted = (0..=100)
            .map(|i| ms(h.value_at_quantile(f64::from(i) / 100.0)))
            .collect();
        Self {
            count: usize::try_from(h.len()).unwrap_or(usize::MAX),
            p50: ms(h.value_at_quantile(0.5)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
            sorted,
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// Seconds since the run started.
    pub t: f64,
    /// Calls up at that moment.
    pub active: usize,
    /// Calls started in the second before.
    pub started: u64,
    /// Calls answered (200 OK) in the second before.
    pub answered: u64,
    /// Calls ended in failure in the second before.
    pub failed: u64,
    /// CPU of the sampled edge process(es), % of one core.
    pub edge_cpu_pct: Option<f64>,
    /// RSS of the sampled edge process(es), MiB.
    pub edge_rss_mib: Option<f64>,
    /// Our own CPU, % of one core.
    pub self_cpu_pct: Option<f64>,
}

/// A call report with when it started.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    /// Seconds after the run started.
    pub started_s: f64,
    /// What happened.
    #[serde(flatten)]
    pub report: CallReport,
}

/// Everything the run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The scenario as run.
    pub scenario: serde_json::Value,
    /// Wall time of the run, seconds.
    pub wall_secs: f64,
    /// Calls placed.
    pub calls: usize,
    /// Calls that succeeded.
    pub succeeded: usize,
    /// Calls that failed.
    pub failed: usize,
    /// Failures by reason key.
    pub failures: BTreeMap<String, usize>,
    /// Calls whose INVITE was redirected (3xx) and followed to the Contact.
    pub redirects: usize,
    /// INVITE to 200 OK.
    pub setup_ms: Distribution,
    /// Answer to first far-end audio.
    pub first_audio_ms: Distribution,
    /// End of caller speech to start of reply.
    pub v2v_ms: Distribution,
    /// Start of caller speech over a reply to the far end going quiet (barge-in scenarios).
    pub barge_in_ms: Distribution,
    /// Caller turns spoken, and how many got a reply.
    pub turns_spoken: u64,
    /// Replies detected.
    pub replies: u64,
    /// RFC 3550 jitter at the end of each call.
    pub jitter_ms: Distribution,
    /// Gaps between received packets, all calls together.
    pub interarrival_ms: Distribution,
    /// Lateness of our own sends behind the pacer clock, all calls together.
    pub send_lateness_ms: Distribution,
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received.
    pub rtp_received: u64,
    /// RTP packets lost (by sequence numbers).
    pub rtp_lost: u64,
    /// RTP packets late.
    pub rtp_late: u64,
    /// Lost as a percentage of expected.
    pub loss_pct: f64,
    /// Highest concurrent calls seen.
    pub peak_active: usize,
    /// Mean call setups per second over the run.
    pub setup_rate_per_sec: f64,
    /// Second-by-second timeline.
    pub timeline: Vec<TimelinePoint>,
    /// Edge CPU: mean % of one core while calls were up.
    pub edge_cpu_mean_pct: Option<f64>,
    /// Edge RSS at its peak, MiB.
    pub edge_rss_peak_mib: Option<f64>,
    /// Our own CPU seconds per call placed.
    pub self_cpu_ms_per_call: Option<f64>,
    /// The edge's own inter-departure deviation over the run (`--edge-metrics`).
    pub edge_departure: Option<EdgeDeparture>,
    /// One edge killed mid-run (`--kill-one-at`): what the run saw of it.
    pub failover: Option<crate::failover::FailoverReport>,
    /// Every call.
    pub call_records: Vec<CallRecord>,
}

impl Summary {
    /// Folds the calls and the timeline into a summary.
    pub fn build(
        scenario: serde_json::Value,
        wall_secs: f64,
        records: Vec<CallRecord>,
        timeline: Vec<TimelinePoint>,
        self_cpu_secs: Option<f64>,
    ) -> Self {
        let mut gaps = new_gap_histogram();
        let mut lateness = new_gap_histogram();
        let mut failures = BTreeMap::new();
        let (mut setup, mut first, mut v2v, mut jitter) = (vec![], vec![], vec![], vec![]);
        let mut barge_in = Vec::new();
        let mut s = Summary {
            scenario,
            wall_secs,
            calls: records.len(),
            ..Summary::default()
        };
        for r in records.iter().map(|c| &c.report) {
            match &r.failure {
                Some(f) => *failures.entry(f.key()).or_insert(0) += 1,
                None => s.succeeded += 1,
            }
            setup.extend(r.setup_ms);
            first.extend(r.first_audio_ms);
            v2v.extend(r.v2v_ms.iter().copied());
            barge_in.extend(r.barge_in_ms.iter().copied());
            s.turns_spoken += u64::from(r.turns_spoken);
            s.redirects += r.redirects as usize;
            s.replies += r.v2v_ms.len() as u64;
            if r.rtp.received > 0 {
                jitter.push(r.rtp.jitter_ms);
            }
            if let Some(h) = &r.gaps_micros {
                let _ = gaps.add(h);
            }
            if let Some(h) = &r.send_lateness_micros {
                let _ = lateness.add(h);
            }
            s.rtp_sent += r.rtp_sent;
            s.rtp_received += r.rtp.received;
            s.rtp_lost += r.rtp.lost;
            s.rtp_late += r.rtp.late;
        }
        s.failed = s.calls - s.succeeded;
        s.failures = failures;
        let expected = s.rtp_received + s.rtp_lost;
        s.loss_pct = if expected == 0 {
            0.0
        } else {
            100.0 * s.rtp_lost as f64 / expected as f64
        };
        s.setup_rate_per_sec = if wall_secs > 0.0 {
            setup.len() as f64 / wall_secs
        } else {
            0.0
        };
        s.setup_ms = Distribution::of(setup);
        s.first_audio_ms = Distribution::of(first);
        s.v2v_ms = Distribution::of(v2v);
        s.barge_in_ms = Distribution::of(barge_in);
        s.jitter_ms = Distribution::of(jitter);
        s.interarrival_ms = Distribution::of_micros(&gaps);
        s.send_lateness_ms = Distribution::of_micros(&lateness);
        s.peak_active = timeline.iter().map(|p| p.active).max().unwrap_or(0);
        let busy: Vec<f64> = timeline
            .iter()
            .filter(|p| p.active > 0)
            .filter_map(|p| p.edge_cpu_pct)
            .collect();
        s.edge_cpu_mean_pct =
            (!busy.is_empty()).then(|| busy.iter().sum::<f64>() / busy.len() as f64);
        s.edge_rss_peak_mib = timeline
            .iter()
            .filter_map(|p| p.edge_rss_mib)
            .reduce(f64::max);
        s.self_cpu_ms_per_call = self_cpu_secs
            .filter(|_| s.calls > 0)
            .map(|c| 1000.0 * c / s.calls as f64);
        s.timeline = timeline;
        s.call_records = records;
        s
    }

    /// Every headline figure by name: `calls`, `failed`, `failed_pct`, `loss_pct`,
    /// `{setup,first_audio,v2v,barge_in,jitter,interarrival,send_lateness}_{p50,p95,p99,max}_ms`, ...
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        m.insert("calls".into(), self.calls as f64);
        m.insert("succeeded".into(), self.succeeded as f64);
        m.insert("failed".into(), self.failed as f64);
        let pct = if self.calls == 0 {
            0.0
        } else {
            100.0 * self.failed as f64 / self.calls as f64
        };
        m.insert("failed_pct".into(), pct);
        m.insert("loss_pct".into(), self.loss_pct);
        m.insert("late".into(), self.rtp_late as f64);
        m.insert("peak_active".into(), self.peak_active as f64);
        m.insert("setup_rate".into(), self.setup_rate_per_sec);
        let unreplied = self.turns_spoken.saturating_sub(self.replies);
        m.insert("unreplied_turns".into(), unreplied as f64);
        for (name, d) in [
            ("setup", &self.setup_ms),
            ("first_audio", &self.first_audio_ms),
            ("ttfa", &self.first_audio_ms),
            ("v2v", &self.v2v_ms),
            ("barge_in", &self.barge_in_ms),
            ("jitter", &self.jitter_ms),
            ("interarrival", &self.interarrival_ms),
            ("send_lateness", &self.send_lateness_ms),
        ] {
            for (q, v) in [
                ("p50", d.p50),
                ("p95", d.p95),
                ("p99", d.p99),
                ("max", d.max),
                ("mean", d.mean),
            ] {
                m.insert(format!("{name}_{q}_ms"), v);
            }
            m.insert(format!("{name}_count"), d.count as f64);
        }
        if let Some(v) = self.edge_cpu_mean_pct {
            m.insert("edge_cpu_pct".into(), v);
        }
        if let Some(v) = self.edge_rss_peak_mib {
            m.insert("edge_rss_mib".into(), v);
        }
        if let Some(d) = &self.edge_departure {
            m.insert("edge_departure_packets".into(), d.packets as f64);
            for (name, v) in [
                ("edge_departure_p50_ms", d.p50_ms_at_most),
                ("edge_departure_p99_ms", d.p99_ms_at_most),
                ("edge_departure_p999_ms", d.p999_ms_at_most),
                ("edge_departure_over_5ms_pct", d.over_5ms_pct),
            ] {
                if let Some(v) = v {
                    m.insert(name.into(), v);
                }
            }
        }
        m
    }

    /// The figure named `name`, if there is one.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics().get(name).copied()
    }
}
