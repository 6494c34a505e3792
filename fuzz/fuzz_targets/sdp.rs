//! Fuzzes SDP: any body through `SessionDescription::parse`, and whatever parses through the
//! offer/answer negotiation for each codec preference. Nothing may panic.
#![no_main]

use freya_edge::sip::sdp::{answer, Codec, Direction, LocalMedia, SessionDescription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = SessionDescription::parse(data) else {
        return;
    };
    for (codecs, rtcp_mux) in [
        (vec![Codec::Pcmu, Codec::Pcma], false),
        (vec![Codec::Opus, Codec::Pcmu], true),
        (vec![Codec::Pcma], true),
    ] {
        let local = LocalMedia {
            codecs,
            address: [203, 0, 113, 5].into(),
            port: 30_000,
            direction: Direction::SendRecv,
            session_id: 42,
            opus_payload_type: 111,
            telephone_event_payload_type: 101,
            ptime: 20,
            rtcp_mux,
        };
        let _ = answer(&offer, &local);
    }
});
