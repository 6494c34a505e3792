//! What one received RTP stream looked like: RFC 3550 loss and interarrival jitter (the edge's
//! [`ReceiverStats`]), late packets, and the distribution of gaps between arrivals.
//!
//! It exists beside the edge's statistics because a load test asks more than an RTCP report
//! carries: the p50/p99/max of packet inter-arrival times (how evenly the edge paces its audio)
//! and how many packets came too late for a playout buffer of a given depth. Everything per
//! packet is arithmetic and a histogram increment: no allocation after the first packet.

use std::time::{Duration, Instant};

use freya_edge::rtp::rtcp::ReceiverStats;
use hdrhistogram::Histogram;

/// Highest inter-arrival gap recorded exactly, in microseconds (longer ones are clamped).
const MAX_GAP_MICROS: u64 = 60_000_000;

/// Receive statistics for one incoming RTP stream (one SSRC at a time).
#[derive(Debug, Clone)]
pub struct StreamStats {
    clock_rate: u32,
    late_after: Duration,
    origin: Instant,
    rfc3550: Option<ReceiverStats>,
    ssrc: Option<u32>,
    ssrc_changes: u32,
    last_arrival: Option<Instant>,
    /// Smallest (arrival - media time) seen, in timestamp units: the best-case transit.
    min_transit: Option<i64>,
    late: u64,
    gaps_micros: Histogram<u64>,
    max_jitter_units: u32,
    /// Losses and receipts of earlier SSRCs, kept when the source changes.
    prior_expected: u64,
    prior_received: u64,
}

/// A snapshot of [`StreamStats`], in plain units, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StreamSummary {
    /// Packets received (duplicates included).
    pub received: u64,
    /// Packets the sequence numbers say were sent.
    pub expected: u64,
    /// Expected minus received, never negative.
    pub lost: u64,
    /// Packets that arrived later than the late threshold behind the best-case transit.
    pub late: u64,
    /// RFC 3550 interarrival jitter at the end of the stream, in milliseconds.
    pub jitter_ms: f64,
    /// Highest RFC 3550 jitter seen during the stream, in milliseconds.
    pub max_jitter_ms: f64,
    /// Median gap between consecutive arrivals, in milliseconds.
    pub interarrival_p50_ms: f64,
    /// 99th percentile gap, in milliseconds.
    pub interarrival_p99_ms: f64,
    /// Longest gap, in milliseconds.
    pub interarrival_max_ms: f64,
    /// Times the sender's SSRC changed.
    pub ssrc_changes: u32,
}

impl StreamStats {
    /// Statistics for a stream at `clock_rate` Hz; `origin` is any fixed instant before the first
    /// packet; a packet more than `late_after` behind the best-case transit is counted late.
    pub fn new(clock_rate: u32, origin: Instant, late_after: Duration) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            late_after,
            origin,
            rfc3550: None,
            ssrc: None,
            ssrc_changes: 0,
            last_arrival: None,
            min_transit: None,
            late: 0,
            gaps_micros: new_gap_histogram(),
            max_jitter_units: 0,
            prior_expected: 0,
            prior_received: 0,
        }
    }

    /// Records one packet that arrived at `now`.
    pub fn record(&mut self, now: Instant, ssrc: u32, sequence: u16, timestamp: u32) {
        let arrival = self.arrival_units(now);
        if self.ssrc != Some(ssrc) {
            if let Some(old) = self.rfc3550.take() {
                self.prior_expected += u64::from(old.expected());
                self.prior_received += u64::from(old.received());
                self.ssrc_changes += 1;
            }
            self.ssrc = Some(ssrc);
            self.min_transit = None;
            self.rfc3550 = Some(ReceiverStats::new(ssrc, sequence));
        }
        if let Some(stats) = self.rfc3550.as_mut() {
            stats.update(sequence, arrival, timestamp);
            self.max_jitter_units = self.max_jitter_units.max(stats.jitter().jitter());
        }
        let transit = i64::from(arrival.wrapping_sub(timestamp) as i32);
        let best = *self.min_transit.get_or_insert(transit);
        if transit < best {
            self.min_transit = Some(transit);
        } else {
            let behind = Duration::from_secs_f64((transit - best) as f64 / self.units_per_sec());
            if behind > self.late_after {
                self.late += 1;
            }
        }
        if let Some(last) = self.last_arrival {
            let gap = now.saturating_duration_since(last).as_micros();
            let gap = u64::try_from(gap)
                .unwrap_or(MAX_GAP_MICROS)
                .min(MAX_GAP_MICROS);
            // Cannot fail: the value is clamped into the histogram's range.
            let _ = self.gaps_micros.record(gap.max(1));
        }
        self.last_arrival = Some(now);
    }

    /// Packets received so far.
    pub fn received(&self) -> u64 {
        self.prior_received + self.rfc3550.as_ref().map_or(0, |s| u64::from(s.received()))
    }

    /// The inter-arrival gaps, in microseconds, to merge into a run-wide histogram.
    pub fn gaps_micros(&self) -> &Histogram<u64> {
        &self.gaps_micros
    }

    /// The figures so far.
    pub fn summary(&self) -> StreamSummary {
        let (expected, received, jitter) = match &self.rfc3550 {
            Some(s) => (
                u64::from(s.expected()),
                u64::from(s.received()),
                s.jitter().jitter(),
            ),
            None => (0, 0, 0),
        };
        let expected = expected + self.prior_expected;
        let received = received + self.prior_received;
        let ms = |micros: u64| micros as f64 / 1000.0;
        let gaps = &self.gaps_micros;
        let has_gaps = !gaps.is_empty();
        StreamSummary {
            received,
            expected,
            lost: expected.saturating_sub(received),
            late: self.late,
            jitter_ms: self.units_to_ms(jitter),
            max_jitter_ms: self.units_to_ms(self.max_jitter_units),
            interarrival_p50_ms: if has_gaps {
                ms(gaps.value_at_quantile(0.5))
            } else {
                0.0
            },
            interarrival_p99_ms: if has_gaps {
                ms(gaps.value_at_quantile(0.99))
            } else {
                0.0
            },
            interarrival_max_ms: if has_gaps { ms(gaps.max()) } else { 0.0 },
            ssrc_changes: self.ssrc_changes,
        }
    }

    fn units_per_sec(&self) -> f64 {
        f64::from(self.clock_rate)
    }

    fn units_to_ms(&self, units: u32) -> f64 {
        f64::from(units) * 1000.0 / self.units_per_sec()
    }

    /// Arrival time in timestamp units since `origin`, wrapping like an RTP clock.
    fn arrival_units(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.origin);
        let units = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        units as u32
    }
}

/// An empty histogram of gaps: 1 µs to 60 s at 2 significant digits (a few KiB).
pub fn new_gap_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_GAP_MICROS, 2).expect("constant histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    #[test]
    fn steady_stream_has_no_loss_no_jitter_and_20ms_gaps() {
        let t0 = Instant::now();
        let mut s = StreamStats::new(8000, t0, Duration::from_millis(60));
        for i in 0..100u16 {
            s.record(
                t0 + MS20 * u32::from(i),
                7,
                1000 + i,
                5000 + 160 * u32::from(i),
            );
        }
        let sum = s.summary();
        assert_eq!(
            (sum.received, sum.expected, sum.lost, sum.late),
            (100, 100, 0, 0)
        );
        assert_eq!(sum.jitter_ms, 0.0);
        assert!((sum.interarrival_p50_ms - 20.0).abs() < 0.2, "{sum:?}");
        assert!((sum.interarrival_max_ms - 20.0).abs() < 0.2, "{sum:?}");
    }

    #[test]
    fn gaps_in_sequence_are_losses_and_a_stall_is_late_and_jittery() {
        let t0 = Instant::now();
        let mut s = StreamStats::new(8000, t0, Duration::from_millis(60));
        for i in 0..50u16 {
            if i % 10 == 3 {
                continue; // lost
            }
            // Packets 20..=29 arrive 100 ms behind.
            let delay = if (20..30).contains(&i) {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            s.record(
                t0 + MS20 * u32::from(i) + delay,
                9,
                65530u16.wrapping_add(i),
                160 * u32::from(i),
            );
        }
        let sum = s.summary();
        assert_eq!(sum.expected, 50, "sequence wrap is followed");
        assert_eq!(sum.lost, 5);
        assert_eq!(sum.late, 9);
        assert!(sum.max_jitter_ms > 5.0, "{sum:?}");
        assert!(sum.interarrival_max_ms >= 119.0, "{sum:?}");
    }

    #[test]
    fn a_new_ssrc_keeps_the_counts_of_the_old_one() {
        let t0 = Instant::now();
        let mut s = StreamStats::new(8000, t0, Duration::from_millis(60));
        for i in 0..10u16 {
            s.record(t0 + MS20 * u32::from(i), 1, i, 160 * u32::from(i));
        }
        for i in 0..10u16 {
            s.record(
                t0 + MS20 * u32::from(10 + i),
                2,
                500 + i,
                99 + 160 * u32::from(i),
            );
        }
        let sum = s.summary();
        assert_eq!((sum.received, sum.expected, sum.ssrc_changes), (20, 20, 1));
    }
}
