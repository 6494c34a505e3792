//! Our SRTP offers and the answers to them: the round trip with our own answerer, the
//! best-effort offer answered plain, and hostile answers (broken keys, junk lifetimes and MKIs,
//! tags and suites we never offered, a hundred lines, huge lines), each a typed error.

use super::*;
use crate::sdp::crypto::SrtpSuite;
use crate::sdp::tests::{local, parse};
use crate::sdp::{answer, offer, read_answer, Codec, LocalMedia};

fn ours(srtp: SrtpPolicy) -> LocalMedia {
    LocalMedia {
        srtp,
        ..local(vec![Codec::Pcmu])
    }
}

/// A callee's answer on `proto` with these `a=crypto` values.
fn answer_with(proto: &str, cryptos: &[String]) -> SessionDescription {
    let lines: String = cryptos
        .iter()
        .map(|c| format!("a=crypto:{c}\r\n"))
        .collect();
    parse(&format!(
        "v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
         m=audio 40000 {proto} 0\r\na=rtpmap:0 PCMU/8000\r\n{lines}a=sendrecv\r\n"
    ))
}

/// A well-formed answer line for `suite` under `tag`.
fn good_line(tag: u32, suite: SrtpSuite) -> String {
    let line = CryptoAttribute::line(tag, &KeyMaterial::generate(suite));
    line.trim_end().trim_start_matches("a=crypto:").to_owned()
}

#[test]
fn a_required_offer_is_savp_with_both_suites_and_fresh_keys_each_time() {
    let plain = offer(&ours(SrtpPolicy::Required));
    let (a, b) = (OfferedKeys::generate(), OfferedKeys::generate());
    assert_ne!(a, b, "fresh keys per offer");
    let secured = secure_offer(&plain, SrtpPolicy::Required, &a);
    let sdp = parse(&secured);
    assert_eq!(sdp.media[0].proto, "RTP/SAVP");
    assert_eq!(sdp.media[0].crypto_lines, 2);
    let suites: Vec<_> = sdp.media[0].cryptos.iter().map(|c| c.key.suite()).collect();
    assert_eq!(suites, SrtpSuite::ALL);
    assert_eq!(sdp.media[0].cryptos[0].tag, 1);
    assert!(!format!("{a:?}").contains(&secured[secured.find("inline:").unwrap() + 7..][..20]));
    // Optional keeps RTP/AVP with the keys (best effort); disabled changes nothing.
    let best_effort = parse(&secure_offer(&plain, SrtpPolicy::Optional, &a));
    assert_eq!(best_effort.media[0].proto, "RTP/AVP");
    assert_eq!(best_effort.media[0].cryptos.len(), 2);
    assert_eq!(secure_offer(&plain, SrtpPolicy::Disabled, &a), plain);
}

#[test]
fn our_answerer_accepts_our_savp_offer_and_the_keys_pair_up() {
    let offered = OfferedKeys::generate();
    let secured = secure_offer(
        &offer(&ours(SrtpPolicy::Required)),
        SrtpPolicy::Required,
        &offered,
    );
    // The callee: another Freya with SRTP required.
    let callee = answer(&parse(&secured), &ours(SrtpPolicy::Required)).expect("answered");
    let callee_keys = callee.srtp.expect("callee keys");
    let reply = parse(&callee.sdp);
    read_answer(&reply, &ours(SrtpPolicy::Required)).expect("codec agreed");
    let keys = answer_keys(&reply, SrtpPolicy::Required, &offered)
        .expect("usable")
        .expect("SRTP");
    assert_eq!(
        keys.ours, callee_keys.theirs,
        "the callee decrypts with our key"
    );
    assert_eq!(
        keys.theirs, callee_keys.ours,
        "we decrypt with the callee's key"
    );
    assert_eq!(keys.suite(), SrtpSuite::AeadAes128Gcm, "our first suite");
}

#[test]
fn a_best_effort_offer_answered_plain_is_plain_and_answered_with_a_key_is_srtp() {
    let offered = OfferedKeys::generate();
    let plain_answer = answer_with("RTP/AVP", &[]);
    assert_eq!(
        answer_keys(&plain_answer, SrtpPolicy::Optional, &offered),
        Ok(None)
    );
    let keyed = answer_with("RTP/AVP", &[good_line(2, SrtpSuite::AesCm128HmacSha1_80)]);
    let keys = answer_keys(&keyed, SrtpPolicy::Optional, &offered)
        .unwrap()
        .unwrap();
    assert_eq!(keys.suite(), SrtpSuite::AesCm128HmacSha1_80);
    let savp = answer_with("RTP/SAVP", &[good_line(1, SrtpSuite::AeadAes128Gcm)]);
    assert!(answer_keys(&savp, SrtpPolicy::Optional, &offered)
        .unwrap()
        .is_some());
}

#[test]
fn a_required_offer_answered_without_srtp_is_refused() {
    let offered = OfferedKeys::generate();
    assert_eq!(
        answer_keys(&answer_with("RTP/AVP", &[]), SrtpPolicy::Required, &offered),
        Err(SrtpAnswerError::NotEncrypted)
    );
    // A key in an RTP/AVP answer is not the RTP/SAVP we required.
    let avp_keyed = answer_with("RTP/AVP", &[good_line(1, SrtpSuite::AeadAes128Gcm)]);
    assert_eq!(
        answer_keys(&avp_keyed, SrtpPolicy::Required, &offered),
        Err(SrtpAnswerError::NotEncrypted)
    );
    for policy in [SrtpPolicy::Required, SrtpPolicy::Optional] {
        assert_eq!(
            answer_keys(&answer_with("RTP/SAVP", &[]), policy, &offered),
            Err(SrtpAnswerError::NoKey)
        );
    }
}

#[test]
fn hostile_answer_keys_are_typed_errors_never_plain_rtp() {
    let offered = OfferedKeys::generate();
    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    let huge = "A".repeat(64 * 1024);
    let unusable = [
        format!("2 AES_CM_128_HMAC_SHA1_80 inline:{}", "!".repeat(40)), // bad base64
        "2 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=".to_owned(),         // short key
        format!("1 AEAD_AES_128_GCM inline:{KEY}"),                     // AES-CM length for GCM
        format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^banana"),     // lifetime junk
        format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"),     // an MKI
        format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|1:4:9:9"),      // MKI junk
        format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY} KDR=1"),        // session parameter
        format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"),              // a suite we never offered
        format!("2 AES_CM_128_HMAC_SHA1_80 inline:{huge}"),             // huge key
        format!("2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|{huge}"),       // huge lifetime
        format!("99999999999999999999 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"), // tag overflow
        "2".to_owned(),
    ];
    for policy in [SrtpPolicy::Required, SrtpPolicy::Optional] {
        for line in &unusable {
            let answered = answer_with("RTP/SAVP", std::slice::from_ref(line));
            assert_eq!(
                answer_keys(&answered, policy, &offered),
                Err(SrtpAnswerError::UnusableKey),
                "{}",
                &line[..line.len().min(80)]
            );
        }
    }
    let hundred: Vec<String> = (1..=100)
        .map(|t| good_line(t, SrtpSuite::AeadAes128Gcm))
        .collect();
    let answered = answer_with("RTP/SAVP", &hundred);
    assert_eq!(answered.media[0].crypto_lines, 100);
    assert!(answered.media[0].cryptos.len() <= crate::sdp::MAX_CRYPTOS);
    assert_eq!(
        answer_keys(&answered, SrtpPolicy::Required, &offered),
        Err(SrtpAnswerError::TooManyKeys(100))
    );
    let two = [
        good_line(1, SrtpSuite::AeadAes128Gcm),
        good_line(2, SrtpSuite::AesCm128HmacSha1_80),
    ];
    assert_eq!(
        answer_keys(
            &answer_with("RTP/SAVP", &two),
            SrtpPolicy::Required,
            &offered
        ),
        Err(SrtpAnswerError::TooManyKeys(2))
    );
    let stranger = answer_with("RTP/SAVP", &[good_line(7, SrtpSuite::AeadAes128Gcm)]);
    assert_eq!(
        answer_keys(&stranger, SrtpPolicy::Required, &offered),
        Err(SrtpAnswerError::TagNotOffered(7))
    );
    // Tag 1 was offered as GCM; the answer claims AES-CM under it.
    let swapped = answer_with("RTP/SAVP", &[good_line(1, SrtpSuite::AesCm128HmacSha1_80)]);
    assert_eq!(
        answer_keys(&swapped, SrtpPolicy::Required, &offered),
        Err(SrtpAnswerError::SuiteMismatch {
            tag: 1,
            offered: "AEAD_AES_128_GCM",
            answered: "AES_CM_128_HMAC_SHA1_80",
        })
    );
}
