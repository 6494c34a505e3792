//! The SIP parser against RFC 4475, "SIP Torture Test Messages": all 49 messages of the RFC
//! (in [`messages`], byte for byte) run through the path every datagram takes on the edge —
//! [`parse_message`] (size cap, start line, header syntax, Content-Length, the five mandatory
//! headers) and, for requests, [`TransactionKey::server`] (an RFC 3261 branch) — and each is
//! held to a stated verdict.
//!
//! Valid messages must be accepted unless our policy is stricter, and every stricter refusal
//! says why; invalid messages must be refused with a typed [`SipError`], never a panic. Where
//! we fall short of the RFC the case is marked a gap (`GapRefused`, `GapAccepted`) with the
//! reason, so the table is an honest inventory: fixing a gap makes its case fail until its
//! verdict is updated. Messages the RFC aims at the transaction user (unknown schemes,
//! Require, Content-Type, ...) only need to get through the parser here: the answer they
//! deserve (416, 420, 415, ...) is the endpoint's business, noted beside each.

mod endpoint_answers;
mod messages;

use messages::*;
use rsip::SipMessage;

use super::message::{parse_message, SipError};
use super::transaction::TransactionKey;

/// What the edge must do with a torture message.
#[derive(Clone, Copy)]
enum Verdict {
    /// The RFC says it is acceptable, and we accept it.
    Accepted,
    /// The RFC says it is invalid, and we refuse it with this error.
    Refused(fn(&SipError) -> bool),
    /// The RFC says it is valid, but our policy refuses it (the case says why).
    Stricter(fn(&SipError) -> bool),
    /// The RFC says it is valid; we refuse it because of a parser limitation (to fix).
    GapRefused(fn(&SipError) -> bool),
    /// The RFC says it is invalid; we accept it because we never read the broken part.
    GapAccepted,
}

use Verdict::*;

struct Case {
    name: &'static str,
    bytes: &'static [u8],
    verdict: Verdict,
    /// Why this verdict, and for application-layer messages what the endpoint should answer.
    why: &'static str,
}

/// The receive path, minus sockets: parse and validate, then (requests) key a transaction.
fn receive(bytes: &[u8]) -> Result<SipMessage, SipError> {
    let message = parse_message(bytes)?;
    if let SipMessage::Request(request) = &message {
        TransactionKey::server(request)?;
    }
    Ok(message)
}

fn check(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let outcome = receive(case.bytes);
        let ok = match (case.verdict, &outcome) {
            (Accepted | GapAccepted, Ok(_)) => true,
            (Refused(m) | Stricter(m) | GapRefused(m), Err(e)) => m(e),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: got {:?} ({})",
                case.name,
                outcome.map(|_| "accepted"),
                case.why
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn unparsable(e: &SipError) -> bool {
    matches!(e, SipError::Unparsable(_))
}

fn content_length(e: &SipError) -> bool {
    matches!(
        e,
        SipError::ContentLengthMismatch { .. }
            | SipError::InvalidHeader {
                header: "Content-Length",
                ..
            }
    )
}

fn bad_start_line(e: &SipError) -> bool {
    matches!(e, SipError::BadStartLine(_))
}

fn no_branch(e: &SipError) -> bool {
    matches!(e, SipError::LegacyBranch(_))
}

#[test]
fn valid_messages_are_accepted_or_refused_by_a_stated_policy() {
    check(&[
        Case {
            name: "wsinv",
            bytes: WSINV,
            verdict: GapRefused(|e| matches!(e, SipError::InvalidHeader { header: "Via", .. })),
            why: "our top-Via parser does not allow LWS inside the sent-protocol (`SIP  /   2.0 \
                  /UDP`); also its branch lacks the cookie, which our policy refuses anyway",
        },
        Case {
            name: "intmeth",
            bytes: INTMETH,
            verdict: GapRefused(unparsable),
            why: "rsip's tokenizer rejects the token-character method and the unusual \
                  Request-URI userinfo; the endpoint still answers 501 from the raw header \
                  lines (`endpoint_answers`)",
        },
        Case {
            name: "esc01",
            bytes: ESC01,
            verdict: Accepted,
            why: "escaped userparts and URI parameters are opaque to us",
        },
        Case {
            name: "escnull",
            bytes: ESCNULL,
            verdict: Accepted,
            why: "%00 stays escaped; nothing unescapes it into a C string",
        },
        Case {
            name: "esc02",
            bytes: ESC02,
            verdict: GapRefused(unparsable),
            why: "rsip refuses `RE%47IST%45R` as a method; the endpoint answers it as the \
                  unknown method it is, 501 (`endpoint_answers`)",
        },
        Case {
            name: "lwsdisp",
            bytes: LWSDISP,
            verdict: Accepted,
            why: "no LWS between display name and < is fine",
        },
        Case {
            name: "longreq",
            bytes: LONGREQ,
            verdict: Stricter(no_branch),
            why: "parses (34 Vias, long values, under the 64 KiB cap), but its top Via has no \
                  branch: policy is RFC 3261 transactions only (an RFC 2543 peer cannot be \
                  matched reliably, and no trunk we serve still sends one)",
        },
        Case {
            name: "dblreq",
            bytes: DBLREQ,
            verdict: Stricter(|e| {
                matches!(
                    e,
                    SipError::ContentLengthMismatch {
                        declared: 0,
                        actual: 445
                    }
                )
            }),
            why: "RFC 3261 §18.3 says to discard octets past Content-Length in a UDP datagram; \
                  we refuse the datagram instead: two messages in one datagram is a broken or \
                  hostile sender, and guessing which part was meant is how smuggling starts",
        },
        Case {
            name: "semiuri",
            bytes: SEMIURI,
            verdict: GapRefused(unparsable),
            why: "rsip's tokenizer cannot read `;` inside a URI userpart",
        },
        Case {
            name: "transports",
            bytes: TRANSPORTS,
            verdict: Accepted,
            why: "only the top Via (UDP) matters to us; SCTP/TLS/UNKNOWN below it are opaque",
        },
        Case {
            name: "mpart01",
            bytes: MPART01,
            verdict: Accepted,
            why: "a 553-octet binary multipart body is carried untouched",
        },
        Case {
            name: "unreason",
            bytes: UNREASON,
            verdict: Accepted,
            why: "a UTF-8 reason phrase is fine",
        },
        Case {
            name: "noreason",
            bytes: NOREASON,
            verdict: Accepted,
            why: "an empty reason phrase is fine",
        },
    ]);
}

#[test]
fn invalid_messages_are_refused_with_a_typed_error() {
    check(&[
        Case {
            name: "badinv01",
            bytes: BADINV01,
            verdict: Refused(no_branch),
            why: "`;;,;,,` leaves the top Via without a branch: no transaction, no answer",
        },
        Case {
            name: "clerr",
            bytes: CLERR,
            verdict: Refused(content_length),
            why: "Content-Length 9999 over a 154-octet body",
        },
        Case {
            name: "ncl",
            bytes: NCL,
            verdict: Refused(content_length),
            why: "negative Content-Length",
        },
        Case {
            name: "scalar02",
            bytes: SCALAR02,
            verdict: Refused(|e| matches!(e, SipError::InvalidHeader { header: "CSeq", .. })),
            why: "CSeq number over 2^32",
        },
        Case {
            name: "scalarlg",
            bytes: SCALARLG,
            verdict: Refused(|e| matches!(e, SipError::InvalidHeader { header: "CSeq", .. })),
            why: "response CSeq number over 2^32",
        },
        Case {
            name: "quotbal",
            bytes: QUOTBAL,
            verdict: GapAccepted,
            why: "the unterminated quote is in To, whose value we keep opaque (we only read \
                  its tag); a name-addr parser would refuse it with 400",
        },
        Case {
            name: "ltgtruri",
            bytes: LTGTRURI,
            verdict: Refused(no_branch),
            why: "refused, though for its branchless Via: the start-line check only asks for a \
                  scheme, so `<sip:...>` as Request-URI alone would get through",
        },
        Case {
            name: "lwsruri",
            bytes: LWSRURI,
            verdict: Refused(bad_start_line),
            why: "LWS inside the Request-URI",
        },
        Case {
            name: "lwsstart",
            bytes: LWSSTART,
            verdict: Refused(bad_start_line),
            why: "two spaces between start-line elements",
        },
        Case {
            name: "trws",
            bytes: TRWS,
            verdict: Refused(bad_start_line),
            why: "trailing spaces after SIP/2.0",
        },
        Case {
            name: "escruri",
            bytes: ESCRURI,
            verdict: Refused(unparsable),
            why: "URI headers (`?Route=`) in a Request-URI",
        },
        Case {
            name: "baddate",
            bytes: BADDATE,
            verdict: Accepted,
            why: "the RFC lets an element ignore a bad Date; we never read Date",
        },
        Case {
            name: "regbadct",
            bytes: REGBADCT,
            verdict: GapAccepted,
            why: "the unbracketed Contact with `?` is only wrong to a registrar; we are not \
                  one (the endpoint answers REGISTER with 405)",
        },
        Case {
            name: "badaspec",
            bytes: BADASPEC,
            verdict: GapAccepted,
            why: "spaces inside <addr-spec> in To: opaque to us, as with quotbal",
        },
        Case {
            name: "baddn",
            bytes: BADDN,
            verdict: GapAccepted,
            why: "unquoted display name with a comma in From/To: opaque to us",
        },
        Case {
            name: "badvers",
            bytes: BADVERS,
            verdict: Refused(bad_start_line),
            why: "SIP/7.0 (the RFC wants 505; a start-line error is our closest)",
        },
        Case {
            name: "mismatch01",
            bytes: MISMATCH01,
            verdict: Refused(|e| matches!(e, SipError::InvalidHeader { header: "CSeq", .. })),
            why: "CSeq method differs from the request method",
        },
        Case {
            name: "mismatch02",
            bytes: MISMATCH02,
            verdict: Refused(unparsable),
            why: "refused, though as an unknown method (rsip) before the CSeq check",
        },
        Case {
            name: "bigcode",
            bytes: BIGCODE,
            verdict: Refused(bad_start_line),
            why: "status code 4294967301",
        },
    ]);
}

#[test]
fn transaction_and_application_layer_messages_reach_the_right_layer() {
    check(&[
        Case {
            name: "badbranch",
            bytes: BADBRANCH,
            verdict: Accepted,
            why: "a bare `z9hG4bK` branch is still a cookie: keyed as an RFC 3261 transaction",
        },
        Case {
            name: "insuf",
            bytes: INSUF,
            verdict: Refused(|e| matches!(e, SipError::MissingHeader("From"))),
            why: "no From/To/Call-ID/Max-Forwards: answered 400 by `bad_request`",
        },
        Case {
            name: "unkscm",
            bytes: UNKSCM,
            verdict: Stricter(unparsable),
            why: "rsip cannot hold an unknown-scheme Request-URI; the RFC wants 416, we drop",
        },
        Case {
            name: "novelsc",
            bytes: NOVELSC,
            verdict: Accepted,
            why: "parses; the endpoint answers 416 (soap.beep is not a SIP URI)",
        },
        Case {
            name: "unksm2",
            bytes: UNKSM2,
            verdict: Accepted,
            why: "parses; REGISTER is answered 405 before any scheme matters",
        },
        Case {
            name: "bext01",
            bytes: BEXT01,
            verdict: Accepted,
            why: "parses; the endpoint answers 420 listing the unsupported Require",
        },
        Case {
            name: "invut",
            bytes: INVUT,
            verdict: Accepted,
            why: "parses; the endpoint answers 415 (not SDP)",
        },
        Case {
            name: "regaut01",
            bytes: REGAUT01,
            verdict: Accepted,
            why: "parses; unknown Authorization scheme is ignored (REGISTER → 405)",
        },
        Case {
            name: "multi01",
            bytes: MULTI01,
            verdict: Refused(content_length),
            why: "the RFC wants 400 for two CSeq/Call-ID/To/From; it is refused first for its \
                  `l: 154` over a 152-octet body (as the RFC prints it)",
        },
        Case {
            name: "mcl01",
            bytes: MCL01,
            verdict: Refused(content_length),
            why: "two Content-Length values: the last one (5) disagrees with the body",
        },
        Case {
            name: "bcast",
            bytes: BCAST,
            verdict: Accepted,
            why: "a response: only the top Via (ours) is read; the broadcast one is never used",
        },
        Case {
            name: "zeromf",
            bytes: ZEROMF,
            verdict: Accepted,
            why: "Max-Forwards 0 matters to proxies; a UAS answers OPTIONS normally",
        },
        Case {
            name: "cparam01",
            bytes: CPARAM01,
            verdict: Accepted,
            why: "parses (REGISTER → 405)",
        },
        Case {
            name: "cparam02",
            bytes: CPARAM02,
            verdict: Accepted,
            why: "parses (REGISTER → 405)",
        },
        Case {
            name: "regescrt",
            bytes: REGESCRT,
            verdict: Accepted,
            why: "parses (REGISTER → 405)",
        },
        Case {
            name: "sdp01",
            bytes: SDP01,
            verdict: Accepted,
            why: "parses; the endpoint should answer 406 (only text/nobodyKnowsThis accepted)",
        },
    ]);
}

#[test]
fn an_rfc_2543_invite_is_refused_for_its_missing_branch() {
    // §3.4.1: the RFC asks a UAS to accept it. We keep RFC 3261 transactions only (see
    // `longreq`): without a branch there is no reliable way to match its retransmissions.
    check(&[Case {
        name: "inv2543",
        bytes: INV2543,
        verdict: Stricter(no_branch),
        why: "RFC 2543 INVITE, no branch",
    }]);
}

#[test]
fn accepted_messages_carry_what_the_rfc_put_in_them() {
    let Ok(SipMessage::Request(esc01)) = receive(ESC01) else {
        panic!("esc01 refused")
    };
    assert_eq!(
        super::message::call_id(&esc01.headers),
        Ok("esc01.239409asdfakjkn23onasd0-3234")
    );
    assert_eq!(esc01.body.len(), 150);
    let Ok(SipMessage::Request(mpart)) = receive(MPART01) else {
        panic!("mpart01 refused")
    };
    assert_eq!(mpart.body.len(), 553);
    assert!(mpart.body.ends_with(b"--7a9cbec02ceef655--\r\n"));
    let Ok(SipMessage::Response(noreason)) = receive(NOREASON) else {
        panic!("noreason refused")
    };
    assert_eq!(u16::from(noreason.status_code), 100);
    let longreq = super::message::parse_unvalidated(LONGREQ).expect("longreq parses");
    let vias = match longreq {
        SipMessage::Request(r) => r
            .headers
            .iter()
            .filter(|h| matches!(h, rsip::Header::Via(_)))
            .count(),
        SipMessage::Response(_) => 0,
    };
    assert_eq!(vias, 34);
}

#[test]
fn every_prefix_of_every_torture_message_is_handled_without_panic() {
    for bytes in [
        WSINV, INTMETH, ESC01, ESCNULL, ESC02, LWSDISP, LONGREQ, DBLREQ, SEMIURI, TRANSPORTS,
        MPART01, UNREASON, NOREASON, BADINV01, CLERR, NCL, SCALAR02, SCALARLG, QUOTBAL, LTGTRURI,
        LWSRURI, LWSSTART, TRWS, ESCRURI, BADDATE, REGBADCT, BADASPEC, BADDN, BADVERS, MISMATCH01,
        MISMATCH02, BIGCODE, BADBRANCH, INSUF, UNKSCM, NOVELSC, UNKSM2, BEXT01, INVUT, REGAUT01,
        MULTI01, MCL01, BCAST, ZEROMF, CPARAM01, CPARAM02, REGESCRT, SDP01, INV2543,
    ] {
        let step = if bytes.len() > 1_000 { 7 } else { 1 };
        for end in (0..bytes.len()).step_by(step) {
            let _ = receive(&bytes[..end]);
        }
    }
}
