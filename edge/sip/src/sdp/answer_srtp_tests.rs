//! SRTP in offer/answer: `RTP/SAVP` answered with our own fresh key under the offerer's tag,
//! and the policy's refusals (488 when SRTP is required and not offered, or offered alone
//! while disabled).

use super::*;
use crate::sdp::crypto::SrtpSuite;
use crate::sdp::tests::{local, parse, OFFER};

/// [`OFFER`] as `RTP/SAVP` with these `a=crypto` lines.
fn savp_offer(cryptos: &[&str]) -> String {
    let lines: String = cryptos
        .iter()
        .map(|c| format!("a=crypto:{c}\r\n"))
        .collect();
    OFFER
        .replace("RTP/AVP", "RTP/SAVP")
        .replace("a=sendrecv\r\n", &format!("a=sendrecv\r\n{lines}"))
}

const AES_CM: &str = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
const GCM: &str = "2 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==";

fn policy(srtp: SrtpPolicy) -> LocalMedia {
    LocalMedia {
        srtp,
        ..local(vec![Codec::Pcmu])
    }
}

#[test]
fn a_savp_offer_is_answered_savp_with_our_own_key_under_its_tag() {
    for srtp in [SrtpPolicy::Optional, SrtpPolicy::Required] {
        let answered = answer(&parse(&savp_offer(&[GCM, AES_CM])), &policy(srtp)).unwrap();
        let keys = answered.srtp.expect("SRTP agreed");
        assert_eq!(
            keys.suite(),
            SrtpSuite::AeadAes128Gcm,
            "the offerer's first"
        );
        let sdp = parse(&answered.sdp);
        assert_eq!(sdp.media[0].proto, "RTP/SAVP");
        assert_eq!(sdp.media[0].cryptos.len(), 1);
        assert_eq!(sdp.media[0].cryptos[0].tag, 2);
        assert_eq!(sdp.media[0].cryptos[0].key, keys.ours);
        assert_ne!(keys.ours, keys.theirs, "never their key echoed back");
        let theirs = CryptoAttribute::parse(GCM).unwrap().key;
        assert_eq!(keys.theirs, theirs);
    }
}

#[test]
fn unusable_crypto_lines_are_skipped_for_a_usable_one() {
    let mki = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";
    let sha32 = "3 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    let answered = answer(
        &parse(&savp_offer(&[mki, sha32, AES_CM])),
        &policy(SrtpPolicy::Optional),
    )
    .unwrap();
    assert_eq!(
        answered.srtp.map(|k| k.suite()),
        Some(SrtpSuite::AesCm128HmacSha1_80)
    );
    assert!(answered
        .sdp
        .contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
    let none = answer(
        &parse(&savp_offer(&[mki, sha32])),
        &policy(SrtpPolicy::Optional),
    );
    assert_eq!(none, Err(SdpError::NoCommonCrypto));
}

#[test]
fn plain_rtp_is_refused_when_srtp_is_required_and_kept_plain_otherwise() {
    assert_eq!(
        answer(&parse(OFFER), &policy(SrtpPolicy::Required)),
        Err(SdpError::SrtpRequired)
    );
    for srtp in [SrtpPolicy::Disabled, SrtpPolicy::Optional] {
        let answered = answer(&parse(OFFER), &policy(srtp)).unwrap();
        assert_eq!(answered.srtp, None);
        assert!(!answered.sdp.contains("a=crypto") && answered.sdp.contains("RTP/AVP"));
    }
}

#[test]
fn a_savp_only_offer_is_refused_while_srtp_is_disabled() {
    assert_eq!(
        answer(
            &parse(&savp_offer(&[AES_CM])),
            &policy(SrtpPolicy::Disabled)
        ),
        Err(SdpError::SrtpDisabled)
    );
}

#[test]
fn with_both_offered_the_policy_picks_the_stream() {
    // RFC 3264 section 5.1: two alternatives of one stream are two m= lines; we take the
    // first we can, and reject the other with port 0.
    let both = savp_offer(&[AES_CM]).replace(
        "m=audio 49170 RTP/SAVP",
        "m=audio 49172 RTP/AVP 0\r\nm=audio 49170 RTP/SAVP",
    );
    let required = answer(&parse(&both), &policy(SrtpPolicy::Required)).unwrap();
    let sdp = parse(&required.sdp);
    assert_eq!((sdp.media[0].port, sdp.media[1].port), (0, 30000));
    assert!(required.srtp.is_some());
    let plain = answer(&parse(&both), &policy(SrtpPolicy::Disabled)).unwrap();
    assert_eq!(plain.audio.remote_rtp.port(), 49172);
    assert!(plain.srtp.is_none());
}
