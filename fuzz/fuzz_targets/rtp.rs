//! Fuzzes the RTP receive path: the input is cut into datagrams (a length byte, then that many
//! bytes), each parsed as RTP and pushed into one jitter buffer and one DTMF receiver (with
//! time advancing 20 ms per datagram and a pop per tick), or parsed as compound RTCP. Also
//! decodes each payload as Opus. Nothing may panic, whatever the sequence numbers,
//! timestamps, SSRCs or lengths.
#![no_main]

use std::time::{Duration, Instant};

use freya_edge::media::frame::SampleRate;
use freya_edge::media::opus::OpusDecoder;
use freya_edge::rtp::dtmf::DtmfReceiver;
use freya_edge::rtp::jitter::{JitterBuffer, JitterConfig};
use freya_edge::rtp::packet::{is_rtcp, RtpPacket};
use freya_edge::rtp::rtcp::parse_compound;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut jitter) = JitterBuffer::new(JitterConfig::default()) else {
        return;
    };
    let mut dtmf = DtmfReceiver::new(8_000);
    let mut opus = OpusDecoder::new(SampleRate::Hz8000).ok();
    let mut pcm = [0i16; 160];
    let start = Instant::now();
    let mut rest = data;
    let mut tick = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (datagram, tail) = tail.split_at(len);
        rest = tail;
        tick += 1;
        let now = start + Duration::from_millis(20 * tick);
        for packet in parse_compound(datagram) {
            let _ = packet;
        }
        if is_rtcp(datagram) {
            continue;
        }
        if let Ok(packet) = RtpPacket::parse(datagram) {
            if packet.payload_type == 101 {
                let _ = dtmf.handle_packet(now, packet.timestamp, packet.payload);
                jitter.push_foreign(now, packet.sequence, packet.ssrc);
            } else {
                jitter.push(
                    now,
                    packet.sequence,
                    packet.timestamp,
                    packet.ssrc,
                    packet.payload,
                );
                if let Some(decoder) = opus.as_mut() {
                    let _ = decoder.decode(packet.payload, &mut pcm);
                }
            }
        }
        let _ = jitter.pop(now);
        dtmf.handle_timeout(now);
        while dtmf.poll_event().is_some() {}
    }
});
