//! SRTP on an outbound attempt: keys offered per trunk policy and only where they may travel,
//! fresh for every attempt, and handed over with the answer.

use super::*;
use crate::sdp::{SessionDescription, SrtpPolicy};

fn srtp_trunk(policy: SrtpPolicy, peer: Peer) -> Trunk {
    Trunk {
        srtp: policy,
        peer,
        ..trunk("s", peer.addr.port())
    }
}

fn tls() -> Peer {
    Peer::tls(SocketAddr::from(([127, 0, 0, 1], 5061)))
}

fn udp() -> Peer {
    Peer::udp(SocketAddr::from(([127, 0, 0, 1], 5060)))
}

fn attempt(trunk: Trunk) -> Result<(InviteAttempt, Request), AttemptFailure> {
    let mut attempt = InviteAttempt::start(
        Instant::now(),
        trunk,
        call_request(),
        "fromtag".into(),
        1,
        Timers::default(),
    )?;
    let invite = sent(&mut attempt).remove(0);
    Ok((attempt, invite))
}

fn offer_of(invite: &Request) -> SessionDescription {
    SessionDescription::parse(&invite.body).expect("an SDP offer")
}

#[test]
fn a_tls_trunk_that_requires_srtp_gets_savp_with_fresh_keys_per_attempt() {
    let (mut first, invite) = attempt(srtp_trunk(SrtpPolicy::Required, tls())).unwrap();
    let offer = offer_of(&invite);
    assert_eq!(offer.media[0].proto, "RTP/SAVP");
    assert_eq!(offer.media[0].cryptos.len(), 2, "both suites");
    let (_, again) = attempt(srtp_trunk(SrtpPolicy::Required, tls())).unwrap();
    assert_ne!(
        offer_of(&again).media[0].cryptos,
        offer.media[0].cryptos,
        "another attempt, other keys"
    );
    first.handle_response(Instant::now(), reply(&invite, 200, None));
    let answered = events(&mut first);
    match &answered[..] {
        [AttemptEvent::Answered {
            srtp: Some(offered),
            dialog,
            ..
        }] => {
            assert_eq!(offered.policy, SrtpPolicy::Required);
            let from_dialog = dialog.local_sdp.as_deref().map(str::as_bytes);
            assert_eq!(
                from_dialog,
                Some(&invite.body[..]),
                "refreshes offer the same keys"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_never_travel_over_plain_signalling_unless_the_trunk_allows_it() {
    match attempt(srtp_trunk(SrtpPolicy::Required, udp())) {
        Err(AttemptFailure::Unsendable(why)) => assert!(why.contains("TLS"), "{why}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let (_, invite) = attempt(srtp_trunk(SrtpPolicy::Optional, udp())).unwrap();
    let offer = offer_of(&invite);
    assert_eq!(offer.media[0].proto, "RTP/AVP");
    assert_eq!(offer.media[0].crypto_lines, 0, "no keys in the clear");
    let allowed = Trunk {
        srtp_without_tls: true,
        ..srtp_trunk(SrtpPolicy::Optional, udp())
    };
    let (_, invite) = attempt(allowed).unwrap();
    let offer = offer_of(&invite);
    assert_eq!(offer.media[0].proto, "RTP/AVP", "best effort keeps RTP/AVP");
    assert_eq!(offer.media[0].cryptos.len(), 2);
}

#[test]
fn a_call_whose_media_cannot_carry_srtp_does_not_use_a_trunk_that_requires_it() {
    let mut request = call_request();
    request.srtp_media = false;
    let trunk = srtp_trunk(SrtpPolicy::Required, tls());
    let started = InviteAttempt::start(
        Instant::now(),
        trunk,
        request,
        "t".into(),
        1,
        Timers::default(),
    );
    assert!(matches!(started, Err(AttemptFailure::Unsendable(_))));
}
