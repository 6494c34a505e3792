//! Fuzzes SDP: any body through `SessionDescription::parse`, whatever parses through the
//! offer/answer negotiation for each codec preference and SRTP policy, and through the reading
//! of an answer to our own offer (codec, and the SRTP keys checked against offered ones); the
//! raw input as one `a=crypto` value too. Nothing may panic.
#![no_main]

use freya_edge::sip::sdp::{
    answer, answer_keys, read_answer, Codec, CryptoAttribute, Direction, LocalMedia,
    OfferedKeys, SessionDescription, SrtpPolicy,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = CryptoAttribute::parse(text);
    }
    let Ok(offer) = SessionDescription::parse(data) else {
        return;
    };
    let offered = OfferedKeys::generate();
    for (codecs, rtcp_mux, srtp) in [
        (vec![Codec::Pcmu, Codec::Pcma], false, SrtpPolicy::Disabled),
        (vec![Codec::Opus, Codec::Pcmu], true, SrtpPolicy::Optional),
        (vec![Codec::Pcma], true, SrtpPolicy::Required),
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
            srtp,
        };
        let _ = answer(&offer, &local);
        let _ = read_answer(&offer, &local);
        let _ = answer_keys(&offer, srtp, &offered);
    }
});
