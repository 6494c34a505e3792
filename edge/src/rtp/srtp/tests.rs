//! SRTP against published vectors (RFC 3711 appendix B.2 and B.3, RFC 7714 sections 16 and
//! 17), round trips both suites, and what must be refused: replays, tampering, junk and
//! another key, without the stream's state moving.

use super::kdf::{derive, Label};
use super::transform::{aes_cm_keystream, roc_estimate};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn aes_cm_keystream_matches_rfc_3711_b2() {
    let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
    let salt: [u8; 14] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap();
    let mut stream = vec![0u8; 16 * 0xff02];
    aes_cm_keystream(&key, &salt, 0, &mut stream);
    let block = |n: usize| stream[n * 16..n * 16 + 16].to_vec();
    for (counter, expected) in [
        (0x0000, "E03EAD0935C95E80E166B16DD92B4EB4"),
        (0x0001, "D23513162B02D0F72A43A2FE4A5F97AB"),
        (0x0002, "41E95B3BB0A2E8DD477901E4FCA894C0"),
        (0xfeff, "EC8CDF7398607CB0F2D21675EA9EA1E4"),
        (0xff00, "362B7C3C6773516318A077D7FC5073AE"),
        (0xff01, "6A2CC3787889374FBEB4C81B17BA6C44"),
    ] {
        assert_eq!(block(counter), hex(expected), "counter {counter:04x}");
    }
}

#[test]
fn key_derivation_matches_rfc_3711_b3() {
    let key: [u8; 16] = hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap();
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let mut cipher_key = [0u8; 16];
    derive(&key, &salt, Label::RtpEncryption, &mut cipher_key);
    assert_eq!(cipher_key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
    let mut cipher_salt = [0u8; 14];
    derive(&key, &salt, Label::RtpSalt, &mut cipher_salt);
    assert_eq!(cipher_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    // B.3 prints 94 octets of the authentication key's PRF output; the suite takes 20.
    let mut auth = [0u8; 94];
    derive(&key, &salt, Label::RtpAuthentication, &mut auth);
    assert_eq!(
        auth.to_vec(),
        hex(
            "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
             E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
             6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
        )
    );
}

/// RFC 7714 section 16: key 00..0f, salt "Quid pro quo", SSRC 0x5501a0b2, sequence 0xf17b.
const GCM_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const GCM_SALT: &str = "517569642070726f2071756f";
const GCM_RTP: &str = "8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
/// RFC 7714 section 16.1.1.
const GCM_SRTP: &str = "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce";
/// The RTCP packet of RFC 7714 sections 17.1 to 17.3 (SSRC "Mars"), SRTCP index 0x5d4.
const GCM_RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
/// RFC 7714 section 17.1.
const GCM_SRTCP: &str = "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4";
/// RFC 7714 section 17.3: authenticated, not encrypted (E clear).
const GCM_SRTCP_CLEAR: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef841dd9683dd78ec92ae58790125f62b3000005d4";

fn gcm_vectors_session() -> SrtpSession {
    let key: [u8; 16] = hex(GCM_KEY).try_into().unwrap();
    with_session_keys(SrtpSuite::AeadAes128Gcm, &key, &hex(GCM_SALT))
}

#[test]
fn gcm_rtp_matches_rfc_7714_16_1() {
    let mut packet = hex(GCM_RTP);
    gcm_vectors_session().protect_rtp(&mut packet).unwrap();
    assert_eq!(packet, hex(GCM_SRTP));
    let mut packet = hex(GCM_SRTP);
    let len = gcm_vectors_session().unprotect_rtp(&mut packet).unwrap();
    assert_eq!(packet[..len], hex(GCM_RTP)[..]);
}

#[test]
fn gcm_rtcp_matches_rfc_7714_17() {
    let mut session = gcm_vectors_session();
    session.set_srtcp_index(0x4d61_7273, 0x5d4);
    let mut packet = hex(GCM_RTCP);
    session.protect_rtcp(&mut packet).unwrap();
    assert_eq!(packet, hex(GCM_SRTCP));
    for protected in [GCM_SRTCP, GCM_SRTCP_CLEAR] {
        let mut packet = hex(protected);
        let len = gcm_vectors_session().unprotect_rtcp(&mut packet).unwrap();
        assert_eq!(packet[..len], hex(GCM_RTCP)[..]);
    }
}

/// An RTP packet: version 2, PCMU, this sequence number and SSRC, 160 octets of payload.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..160).map(|i| (i as u8) ^ (seq as u8)));
    p
}

/// A receiver report from `ssrc` with one report block.
fn rtcp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0x11; 24]);
    p
}

/// A sender and a receiver for `suite`, as both ends of one direction of a call.
fn pair(suite: SrtpSuite) -> (SrtpSession, SrtpSession) {
    let (a, b) = (KeyMaterial::generate(suite), KeyMaterial::generate(suite));
    (
        SrtpSession::from_material(&a, &b, DEFAULT_REPLAY_WINDOW),
        SrtpSession::from_material(&b, &a, DEFAULT_REPLAY_WINDOW),
    )
}

#[test]
fn both_suites_round_trip_rtp_and_rtcp_both_ways() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        for seq in 100..110 {
            let plain = rtp(seq, 0xa1);
            let mut packet = plain.clone();
            alice.protect_rtp(&mut packet).unwrap();
            assert_ne!(packet[12..172], plain[12..], "{suite:?}: payload encrypted");
            assert_eq!(packet[..12], plain[..12], "{suite:?}: header in the clear");
            let len = bob.unprotect_rtp(&mut packet).unwrap();
            assert_eq!(packet[..len], plain[..], "{suite:?}");
            let mut back = rtp(seq, 0xb2);
            bob.protect_rtp(&mut back).unwrap();
            let len = alice.unprotect_rtp(&mut back).unwrap();
            assert_eq!(back[..len], rtp(seq, 0xb2)[..]);
        }
        let plain = rtcp(0xa1);
        let mut report = plain.clone();
        alice.protect_rtcp(&mut report).unwrap();
        assert_ne!(report[8..plain.len()], plain[8..]);
        let len = bob.unprotect_rtcp(&mut report).unwrap();
        assert_eq!(report[..len], plain[..]);
    }
}

#[test]
fn a_replayed_packet_is_refused_and_a_late_one_accepted_once() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let mut sent = Vec::new();
        for seq in 0..5 {
            let mut p = rtp(seq, 7);
            alice.protect_rtp(&mut p).unwrap();
            sent.push(p);
        }
        for p in [&sent[0], &sent[1], &sent[3], &sent[4]] {
            bob.unprotect_rtp(&mut p.clone()).unwrap();
        }
        assert_eq!(
            bob.unprotect_rtp(&mut sent[1].clone()),
            Err(SrtpError::Replayed)
        );
        bob.unprotect_rtp(&mut sent[2].clone())
            .expect("late, inside the window");
        assert_eq!(
            bob.unprotect_rtp(&mut sent[2].clone()),
            Err(SrtpError::Replayed)
        );
    }
}

#[test]
fn a_packet_behind_the_window_is_refused() {
    let (mut alice, mut bob) = pair(SrtpSuite::AesCm128HmacSha1_80);
    let mut old = rtp(1, 7);
    alice.protect_rtp(&mut old).unwrap();
    for seq in 2..200 {
        let mut p = rtp(seq, 7);
        alice.protect_rtp(&mut p).unwrap();
        bob.unprotect_rtp(&mut p).unwrap();
    }
    assert_eq!(bob.unprotect_rtp(&mut old), Err(SrtpError::TooOld));
}

#[test]
fn a_tampered_packet_fails_authentication_and_moves_nothing() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let mut p = rtp(10, 7);
        alice.protect_rtp(&mut p).unwrap();
        for at in [1, 3, 11, 40, p.len() - 1] {
            let mut bad = p.clone();
            bad[at] ^= 0x01;
            assert_eq!(
                bob.unprotect_rtp(&mut bad),
                Err(SrtpError::AuthenticationFailed),
                "{suite:?} byte {at}"
            );
        }
        bob.unprotect_rtp(&mut p)
            .expect("the real one still passes");
        let mut report = rtcp(7);
        alice.protect_rtcp(&mut report).unwrap();
        let mut bad = report.clone();
        bad[10] ^= 0x80;
        assert_eq!(
            bob.unprotect_rtcp(&mut bad),
            Err(SrtpError::AuthenticationFailed)
        );
        bob.unprotect_rtcp(&mut report).unwrap();
    }
}

#[test]
fn another_key_and_junk_are_refused_without_panicking() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let (mut mallory, _) = pair(suite);
        let mut forged = rtp(50, 7);
        mallory.protect_rtp(&mut forged).unwrap();
        assert_eq!(
            bob.unprotect_rtp(&mut forged),
            Err(SrtpError::AuthenticationFailed)
        );
        let mut state = 0x1234_5678u32;
        for len in 0..400 {
            let mut junk: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect();
            if len > 0 {
                junk[0] = 0x80 | (junk[0] & 0x3f);
            }
            assert!(bob.unprotect_rtp(&mut junk.clone()).is_err());
            assert!(bob.unprotect_rtcp(&mut junk).is_err());
        }
        // The forgery's sequence number was not taken as seen: the real packet 50 passes.
        let mut real = rtp(50, 7);
        alice.protect_rtp(&mut real).unwrap();
        bob.unprotect_rtp(&mut real).unwrap();
    }
}

#[test]
fn rollover_counter_follows_the_sequence_number_across_its_wrap() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let seqs: Vec<u16> = (65530..=65535).chain(0..6).collect();
        let mut sent = Vec::new();
        for &seq in &seqs {
            let mut p = rtp(seq, 9);
            alice.protect_rtp(&mut p).unwrap();
            sent.push(p);
        }
        // Delivered out of order across the wrap: 65535 arrives after 0 and 1.
        let order = [0, 1, 2, 3, 4, 6, 7, 5, 8, 9, 10, 11];
        for i in order {
            let len = bob.unprotect_rtp(&mut sent[i].clone()).unwrap_or_else(|e| {
                panic!("{suite:?} seq {}: {e}", seqs[i]);
            });
            assert_eq!(
                sent[i].len() - len,
                if suite == SrtpSuite::AeadAes128Gcm {
                    16
                } else {
                    10
                }
            );
        }
        assert_eq!(
            bob.unprotect_rtp(&mut sent[5].clone()),
            Err(SrtpError::Replayed),
            "65535 of the first cycle is not taken again"
        );
        // A receiver that does not know the sender wrapped (ROC 0) cannot authenticate: the
        // ROC is part of the tag (AES-CM) or the nonce (GCM).
        let (mut sender, mut receiver) = pair(suite);
        sender.set_roc(3, 1, 10);
        let mut p = rtp(11, 3);
        sender.protect_rtp(&mut p).unwrap();
        assert_eq!(
            receiver.unprotect_rtp(&mut p),
            Err(SrtpError::AuthenticationFailed)
        );
    }
}

#[test]
fn roc_estimate_follows_rfc_3711_appendix_a() {
    assert_eq!(roc_estimate(5, 100, 101), 5);
    assert_eq!(roc_estimate(5, 65535, 2), 6, "just after the wrap");
    assert_eq!(roc_estimate(6, 2, 65535), 5, "a late packet from before it");
    assert_eq!(roc_estimate(6, 40000, 30000), 6);
}

#[test]
fn srtcp_index_counts_from_zero_and_a_replayed_report_is_refused() {
    for suite in SrtpSuite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let mut reports = Vec::new();
        for expected in 0u32..3 {
            let mut r = rtcp(0xa1);
            alice.protect_rtcp(&mut r).unwrap();
            let at = match suite {
                SrtpSuite::AesCm128HmacSha1_80 => r.len() - 14,
                SrtpSuite::AeadAes128Gcm => r.len() - 4,
            };
            let word = u32::from_be_bytes(r[at..at + 4].try_into().unwrap());
            assert_eq!(word, 0x8000_0000 | expected, "{suite:?}: E set, index");
            reports.push(r);
        }
        for r in &reports {
            bob.unprotect_rtcp(&mut r.clone()).unwrap();
        }
        assert_eq!(
            bob.unprotect_rtcp(&mut reports[1].clone()),
            Err(SrtpError::Replayed)
        );
    }
}

#[test]
fn the_sdp_key_material_round_trips_through_a_session() {
    let theirs = KeyMaterial::generate(SrtpSuite::AesCm128HmacSha1_80);
    let mut sender = one_way(&theirs);
    let mut receiver = one_way(&theirs);
    let mut p = rtp(1, 1);
    sender.protect_rtp(&mut p).unwrap();
    receiver.unprotect_rtp(&mut p).unwrap();
}
