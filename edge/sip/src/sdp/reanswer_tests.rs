//! Re-answers to hold, resume and refresh offers: the direction for each offered one, old-style
//! hold, and the `o=` version going up exactly when the answer changes.

use super::*;
use crate::sdp::tests::{answer_pcmu, parse, OFFER};

fn first_answer() -> String {
    answer_pcmu(OFFER).unwrap().sdp
}

fn version(sdp: &str) -> u64 {
    let origin = parse(sdp).origin;
    origin.split(' ').nth(2).unwrap().parse().unwrap()
}

fn audio_direction(sdp: &str) -> Option<Direction> {
    parse(sdp).media[0].direction
}

#[test]
fn each_offered_direction_gets_its_rfc_3264_answer_and_a_new_version() {
    let previous = first_answer();
    assert_eq!(version(&previous), 42);
    for (offered, answered) in [
        ("sendonly", Direction::RecvOnly),
        ("inactive", Direction::Inactive),
        ("recvonly", Direction::SendOnly),
    ] {
        let offer = OFFER.replace("a=sendrecv", &format!("a={offered}"));
        let re = reanswer(&previous, &parse(&offer)).unwrap();
        assert_eq!(re.direction, answered, "{offered}");
        assert_eq!(re.previous_direction, Direction::SendRecv);
        assert!(re.changed, "{offered}");
        assert_eq!(audio_direction(&re.sdp), Some(answered), "{}", re.sdp);
        assert_eq!(
            re.sdp.matches("a=").count(),
            previous.matches("a=").count(),
            "only the direction line is rewritten: {}",
            re.sdp
        );
        assert_eq!(version(&re.sdp), 43, "{offered}: o= version bumped");
        assert_eq!(
            parse(&re.sdp).media[0].port,
            30000,
            "the port stays: {}",
            re.sdp
        );
    }
}

#[test]
fn old_style_hold_is_hold() {
    let previous = first_answer();
    let offer = OFFER.replace("c=IN IP4 198.51.100.1", "c=IN IP4 0.0.0.0");
    assert_eq!(offered_direction(&parse(&offer)), Direction::SendOnly);
    let re = reanswer(&previous, &parse(&offer)).unwrap();
    assert_eq!(re.direction, Direction::RecvOnly);
    assert!(re.changed && version(&re.sdp) == 43);
    let both = offer.replace("a=sendrecv", "a=recvonly");
    assert_eq!(offered_direction(&parse(&both)), Direction::Inactive);
}

#[test]
fn a_refresh_that_changes_nothing_keeps_the_answer_and_its_version() {
    let previous = first_answer();
    let re = reanswer(&previous, &parse(OFFER)).unwrap();
    assert!(!re.changed);
    assert_eq!(re.sdp, previous);
    assert_eq!(re.direction, Direction::SendRecv);
    // Hold, hold again (a refresh while held), then resume: 43, 43, 44.
    let hold = OFFER.replace("a=sendrecv", "a=sendonly");
    let held = reanswer(&previous, &parse(&hold)).unwrap();
    let again = reanswer(&held.sdp, &parse(&hold)).unwrap();
    assert!(!again.changed && again.sdp == held.sdp && version(&again.sdp) == 43);
    assert_eq!(again.previous_direction, Direction::RecvOnly);
    let resumed = reanswer(&again.sdp, &parse(OFFER)).unwrap();
    assert!(resumed.changed);
    assert_eq!(version(&resumed.sdp), 44);
    assert_eq!(audio_direction(&resumed.sdp), Some(Direction::SendRecv));
    assert_eq!(resumed.previous_direction, Direction::RecvOnly);
}

#[test]
fn an_answer_without_a_direction_line_gets_one_and_rejected_streams_none() {
    let previous = first_answer().replace("a=sendrecv\r\n", "") + "m=video 0 RTP/AVP 31\r\n";
    let offer = OFFER.replace("a=sendrecv", "a=inactive");
    let re = reanswer(&previous, &parse(&offer)).unwrap();
    let sdp = parse(&re.sdp);
    assert_eq!(sdp.media[0].direction, Some(Direction::Inactive));
    assert_eq!(sdp.media[1].direction, None, "{}", re.sdp);
}

#[test]
fn an_offer_without_audio_is_answered_inactive() {
    let offer = OFFER.replace("m=audio 49170", "m=audio 0");
    let re = reanswer(&first_answer(), &parse(&offer)).unwrap();
    assert_eq!(re.direction, Direction::Inactive);
}

#[test]
fn a_previous_sdp_we_cannot_read_is_an_error_not_a_panic() {
    assert!(reanswer("garbage", &parse(OFFER)).is_err());
    let no_version = first_answer().replace("o=freya 42 42", "o=freya 42 x");
    let offer = OFFER.replace("a=sendrecv", "a=sendonly");
    assert!(reanswer(&no_version, &parse(&offer)).is_err());
}
