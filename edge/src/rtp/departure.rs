//! How evenly an outgoing RTP stream leaves the edge: for each packet, how far the time since the
//! previous packet strays from the media time between them (RTP timestamps over the clock
//! rate). That is the sender's half of RFC 3550's interarrival jitter, measured where the edge is
//! responsible for it, before the network or the receiver's own scheduling adds theirs. A stream
//! that pauses (no packet for idle frames) is not penalised: the media time covers the pause.
//! Sans-IO: the call task reports each departure with its `Instant`.

use std::time::{Duration, Instant};

/// The spacing of one outgoing stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct DepartureSpacing {
    /// The previous packet's departure and RTP timestamp.
    last: Option<(Instant, u32)>,
}

impl DepartureSpacing {
    /// A stream that has sent nothing yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records a packet that left at `at`; returns how far its spacing from the previous one
    /// strays from the media clock. `None` for the first packet, and for a packet repeating the
    /// previous timestamp (the redundant end packets of an RFC 4733 event), whose spacing the
    /// media clock does not define.
    pub(crate) fn on_departure(
        &mut self,
        at: Instant,
        rtp_timestamp: u32,
        clock_rate: u32,
    ) -> Option<Duration> {
        let previous = self.last.replace((at, rtp_timestamp));
        let (then, then_timestamp) = previous?;
        let media_units = rtp_timestamp.wrapping_sub(then_timestamp);
        // A timestamp that went backwards (wrapped past half the range) starts a new reference.
        if media_units == 0 || media_units > u32::MAX / 2 || clock_rate == 0 {
            return None;
        }
        let media = Duration::from_secs_f64(f64::from(media_units) / f64::from(clock_rate));
        let actual = at.saturating_duration_since(then);
        Some(actual.abs_diff(media))
    }
}

/// The RTP timestamp of an RTP packet's bytes (RFC 3550 §5.1), or `None` when too short.
pub(crate) fn rtp_timestamp(packet: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = packet.get(4..8)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_steady_stream_strays_by_nothing_and_a_late_packet_by_its_lateness() {
        let start = Instant::now();
        let mut spacing = DepartureSpacing::new();
        assert_eq!(spacing.on_departure(start, 1_000, 8_000), None);
        assert_eq!(
            spacing.on_departure(start + 20 * MS, 1_160, 8_000),
            Some(Duration::ZERO)
        );
        // 7 ms late, then back on the clock: both gaps stray by 7 ms.
        assert_eq!(
            spacing.on_departure(start + 47 * MS, 1_320, 8_000),
            Some(7 * MS)
        );
        assert_eq!(
            spacing.on_departure(start + 60 * MS, 1_480, 8_000),
            Some(7 * MS)
        );
    }

    #[test]
    fn a_pause_in_the_stream_is_measured_against_the_media_time_it_covers() {
        let start = Instant::now();
        let mut spacing = DepartureSpacing::new();
        spacing.on_departure(start, u32::MAX - 479, 48_000);
        // Three idle frames, and a timestamp that wraps: 80 ms of media in 80 ms.
        assert_eq!(
            spacing.on_departure(start + 80 * MS, 3_360, 48_000),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn repeated_timestamps_and_short_packets_are_not_measured() {
        let start = Instant::now();
        let mut spacing = DepartureSpacing::new();
        spacing.on_departure(start, 500, 8_000);
        assert_eq!(spacing.on_departure(start + MS, 500, 8_000), None);
        assert_eq!(
            rtp_timestamp(&[0x80, 0, 0, 1, 0, 0, 0x01, 0x02, 9]),
            Some(258)
        );
        assert_eq!(rtp_timestamp(&[0x80, 0, 0, 1, 0]), None);
    }
}
