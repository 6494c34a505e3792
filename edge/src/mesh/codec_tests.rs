//! The mesh codec against its own output, cut, grown and garbled bytes: every hostile input is
//! a typed error and nothing panics.

use rand::{Rng, SeedableRng};

use super::*;

fn key() -> LegKey {
    LegKey {
        call: Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001),
        leg: 2,
    }
}

fn messages() -> Vec<ControlMessage> {
    vec![
        ControlMessage::Join {
            key: key(),
            kind: PayloadKind::Pcma,
            from_edge: "edge-b".into(),
        },
        ControlMessage::Leave { key: key() },
        ControlMessage::Dial {
            key: key(),
            workspace: "ws_0192".into(),
            to: "+15550100".into(),
            from_edge: "edge-a".into(),
        },
        ControlMessage::Mute {
            key: key(),
            muted: true,
        },
        ControlMessage::Hangup {
            key: key(),
            cause: HangupCause::DialFailed,
        },
        ControlMessage::Hangup {
            key: key(),
            cause: HangupCause::Refused,
        },
    ]
}

#[test]
fn an_audio_frame_round_trips_and_every_cut_is_short() {
    let payload = [0x55u8; 160];
    let frame = AudioFrame {
        header: AudioHeader {
            key: key(),
            kind: PayloadKind::Pcmu,
            sequence: 65_535,
            timestamp: 0xdead_beef,
        },
        payload: &payload,
    };
    let mut bytes = Vec::new();
    frame.encode_into(&mut bytes).expect("encode");
    assert_eq!(bytes.len(), AUDIO_HEADER_LEN + 160);
    assert_eq!(AudioFrame::decode(&bytes).expect("decode"), frame);
    for cut in 0..AUDIO_HEADER_LEN {
        assert_eq!(
            AudioFrame::decode(&bytes[..cut]),
            Err(MeshCodecError::Short)
        );
    }
}

#[test]
fn an_oversized_or_foreign_audio_datagram_is_refused() {
    let big = vec![0u8; AUDIO_HEADER_LEN + MAX_AUDIO_PAYLOAD + 1];
    assert!(matches!(
        AudioFrame::decode(&big),
        Err(MeshCodecError::PayloadTooLarge(_))
    ));
    let payload = vec![0u8; MAX_AUDIO_PAYLOAD + 1];
    let frame = AudioFrame {
        header: AudioHeader {
            key: key(),
            kind: PayloadKind::Opus,
            sequence: 1,
            timestamp: 1,
        },
        payload: &payload,
    };
    assert!(frame.encode_into(&mut Vec::new()).is_err());
    let mut bytes = Vec::new();
    AudioFrame {
        payload: &[],
        ..frame
    }
    .encode_into(&mut bytes)
    .expect("encode");
    bytes[0] = 9;
    assert_eq!(AudioFrame::decode(&bytes), Err(MeshCodecError::Version(9)));
    bytes[0] = MESH_VERSION;
    bytes[1] = 200;
    assert_eq!(
        AudioFrame::decode(&bytes),
        Err(MeshCodecError::PayloadKind(200))
    );
}

#[test]
fn control_messages_round_trip_through_any_split() {
    let mut stream = Vec::new();
    for m in messages() {
        m.encode_into(&mut stream).expect("encode");
    }
    for piece in [1, 2, 3, 7, 64, stream.len()] {
        let mut reader = ControlReader::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            reader.push(chunk, &mut out).expect("push");
        }
        assert_eq!(out, messages(), "pieces of {piece}");
        assert_eq!(reader.pending(), 0);
    }
}

#[test]
fn a_length_over_the_cap_ends_the_stream_before_buffering() {
    let mut reader = ControlReader::default();
    let mut out = Vec::new();
    let huge = (u16::MAX).to_be_bytes();
    assert_eq!(
        reader.push(&huge, &mut out),
        Err(MeshCodecError::ControlTooLarge(usize::from(u16::MAX)))
    );
    assert!(reader.pending() <= 2);
    // A spent reader takes nothing more.
    let mut good = Vec::new();
    messages()[1].encode_into(&mut good).expect("encode");
    assert!(reader.push(&good, &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn a_text_field_longer_than_allowed_is_refused_both_ways() {
    let long = ControlMessage::Join {
        key: key(),
        kind: PayloadKind::Pcmu,
        from_edge: "x".repeat(MAX_TEXT_LEN + 1),
    };
    let mut out = vec![7u8];
    assert_eq!(long.encode_into(&mut out), Err(MeshCodecError::Text));
    assert_eq!(out, vec![7u8], "a refused message leaves nothing behind");
    let mut body = vec![1u8];
    body.extend_from_slice(key().call.as_bytes());
    body.extend_from_slice(&[0, 2, 0, 200]);
    body.extend_from_slice(&[b'x'; 200]);
    assert_eq!(ControlMessage::decode(&body), Err(MeshCodecError::Text));
    let mut bad_utf8 = vec![1u8];
    bad_utf8.extend_from_slice(key().call.as_bytes());
    bad_utf8.extend_from_slice(&[0, 2, 0, 2, 0xff, 0xfe]);
    assert_eq!(ControlMessage::decode(&bad_utf8), Err(MeshCodecError::Text));
}

#[test]
fn junk_never_panics_and_is_mostly_refused() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let mut reader = ControlReader::default();
    let mut out = Vec::new();
    let mut refused = 0;
    for _ in 0..20_000 {
        let len = rng.gen_range(0..800);
        let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if AudioFrame::decode(&junk).is_err() {
            refused += 1;
        }
        let _ = ControlMessage::decode(&junk);
        if reader.push(&junk, &mut out).is_err() {
            reader = ControlReader::default();
        }
        assert!(reader.pending() <= 2 + MAX_CONTROL_LEN);
    }
    // Random bytes rarely carry our version byte and a known kind.
    assert!(refused > 19_000, "{refused} of 20000 refused");
}

#[test]
fn garbling_any_byte_of_a_valid_message_is_an_error_or_another_valid_message() {
    for m in messages() {
        let mut bytes = Vec::new();
        m.encode_into(&mut bytes).expect("encode");
        let body = &bytes[2..];
        for i in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut garbled = body.to_vec();
                garbled[i] ^= flip;
                if let Ok(other) = ControlMessage::decode(&garbled) {
                    let mut again = Vec::new();
                    other.encode_into(&mut again).expect("re-encode");
                    assert!(again.len() <= 2 + MAX_CONTROL_LEN);
                }
            }
        }
        for extra in 1..4 {
            let mut longer = body.to_vec();
            longer.extend(std::iter::repeat_n(0u8, extra));
            assert!(ControlMessage::decode(&longer).is_err());
        }
    }
}
