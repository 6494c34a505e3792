//! telephone-event in offers and answers: at the codec's clock rate when offered, else at
//! 8000 (what Asterisk, FreeSWITCH and baresip offer beside Opus), else at whatever rate is
//! offered; our own offers read back with the rate the far end chose.

use super::*;
use crate::sdp::tests::{local, parse};

/// An offer with `formats` on the m= line and the given rtpmap lines.
fn offer_with(formats: &str, maps: &str) -> SessionDescription {
    parse(&format!(
        "v=0\r\no=baresip 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
         m=audio 49170 RTP/AVP {formats}\r\n{maps}a=ptime:20\r\na=sendrecv\r\n"
    ))
}

const BARESIP_OPUS: &str = "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n\
    a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

#[test]
fn opus_with_telephone_event_at_8000_keeps_both_and_answers_the_event_at_8000() {
    let answered = answer(
        &offer_with("96 101", BARESIP_OPUS),
        &local(vec![Codec::Opus, Codec::Pcmu]),
    )
    .unwrap();
    assert_eq!(
        (answered.audio.codec, answered.audio.payload_type),
        (Codec::Opus, 96)
    );
    assert_eq!(answered.audio.telephone_event, Some(101));
    assert_eq!(answered.audio.telephone_event_rate, 8000);
    let sdp = parse(&answered.sdp);
    assert_eq!(sdp.media[0].formats, ["96", "101"]);
    let event = sdp.media[0].rtpmap(101).unwrap();
    assert_eq!(
        (event.encoding.as_str(), event.clock_rate),
        ("telephone-event", 8000)
    );
    assert_eq!(sdp.media[0].rtpmap(96).unwrap().clock_rate, 48000);
    assert_eq!(sdp.media[0].fmtp(101), Some("0-15"));
}

#[test]
fn pcmu_with_telephone_event_at_8000_is_answered_as_before() {
    let maps = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";
    let answered = answer(&offer_with("0 101", maps), &local(vec![Codec::Pcmu])).unwrap();
    assert_eq!(answered.audio.telephone_event, Some(101));
    assert_eq!(answered.audio.telephone_event_rate, 8000);
    assert!(answered.sdp.contains(
        "m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    ));
}

#[test]
fn opus_offered_with_events_at_48000_and_8000_picks_48000_in_either_order() {
    for formats in ["96 101 102", "96 102 101"] {
        let maps = "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n\
                    a=rtpmap:102 telephone-event/48000\r\n";
        let answered = answer(&offer_with(formats, maps), &local(vec![Codec::Opus])).unwrap();
        assert_eq!(answered.audio.telephone_event, Some(102), "{formats}");
        assert_eq!(answered.audio.telephone_event_rate, 48000);
        let sdp = parse(&answered.sdp);
        assert_eq!(sdp.media[0].formats, ["96", "102"]);
        assert_eq!(sdp.media[0].rtpmap(102).unwrap().clock_rate, 48000);
        assert!(sdp.media[0].rtpmap(101).is_none());
    }
}

#[test]
fn pcmu_offered_with_events_at_16000_and_8000_picks_8000_and_any_rate_is_the_last_resort() {
    let maps = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:100 telephone-event/16000\r\n\
                a=rtpmap:101 telephone-event/8000\r\n";
    let answered = answer(&offer_with("0 100 101", maps), &local(vec![Codec::Pcmu])).unwrap();
    assert_eq!(
        (
            answered.audio.telephone_event,
            answered.audio.telephone_event_rate
        ),
        (Some(101), 8000)
    );
    let maps = "a=rtpmap:96 opus/48000/2\r\na=rtpmap:100 telephone-event/16000\r\n";
    let answered = answer(&offer_with("96 100", maps), &local(vec![Codec::Opus])).unwrap();
    assert_eq!(
        (
            answered.audio.telephone_event,
            answered.audio.telephone_event_rate
        ),
        (Some(100), 16000)
    );
    assert!(answered
        .sdp
        .contains("a=rtpmap:100 telephone-event/16000\r\n"));
}

#[test]
fn an_event_rtpmap_not_on_the_m_line_or_without_events_is_not_negotiated() {
    let maps = "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n";
    let answered = answer(&offer_with("96", maps), &local(vec![Codec::Opus])).unwrap();
    assert_eq!(answered.audio.telephone_event, None);
    assert!(!answered.sdp.contains("telephone-event"));
}

#[test]
fn an_opus_only_answer_with_telephone_event_at_8000_is_read_with_that_rate() {
    let ours = local(vec![Codec::Opus, Codec::Pcmu]);
    let our_offer = parse(&offer(&ours));
    // Our offer lists telephone-event at 8000 (101) and at 48000 (102).
    assert_eq!(our_offer.media[0].rtpmap(101).unwrap().clock_rate, 8000);
    assert_eq!(our_offer.media[0].rtpmap(102).unwrap().clock_rate, 48000);
    // A callee like baresip answers Opus with the 8000 one only.
    let their_answer =
        "v=0\r\no=callee 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\n\
        t=0 0\r\nm=audio 40000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";
    let agreed = read_answer(&parse(their_answer), &ours).unwrap();
    assert_eq!((agreed.codec, agreed.payload_type), (Codec::Opus, 111));
    assert_eq!(
        (agreed.telephone_event, agreed.telephone_event_rate),
        (Some(101), 8000)
    );
    // And one that keeps the 48000 one is read at 48000.
    let at_48k = their_answer
        .replace("111 101", "111 102")
        .replace("101 telephone-event/8000", "102 telephone-event/48000")
        .replace("fmtp:101", "fmtp:102");
    let agreed = read_answer(&parse(&at_48k), &ours).unwrap();
    assert_eq!(
        (agreed.telephone_event, agreed.telephone_event_rate),
        (Some(102), 48000)
    );
}
