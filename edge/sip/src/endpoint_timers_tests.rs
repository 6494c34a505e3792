//! The endpoint's deadline queue against the owners it stands for: deadlines fire in order,
//! a stale entry never fires, and `poll_timeout` always equals the minimum found by asking
//! every owner, as the endpoint used to.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::tests::{
    addr, caller_request, endpoint, events, in_dialog, invite, offered, sent, to_tag, CALLER,
};
use super::*;

/// The earliest deadline by asking every owner (the scan `poll_timeout` replaced).
fn brute_force_next(ep: &SipEndpoint) -> Option<Instant> {
    let invites = ep.invites.values().filter_map(|t| t.poll_timeout());
    let others = ep.others.values().filter_map(|t| t.poll_timeout());
    let outgoing = ep.outgoing.values().filter_map(|r| r.tx.poll_timeout());
    let refresh = ep.refresh_invites.values().filter_map(|r| r.poll_timeout());
    let outbound = ep.outbound.values().filter_map(OutboundCall::poll_timeout);
    let dialogs = ep.dialogs.values().filter_map(Dialog::next_deadline);
    invites
        .chain(others)
        .chain(refresh)
        .chain(outgoing)
        .chain(outbound)
        .chain(dialogs)
        .min()
}

fn call_id_of(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .map(|c| c.trim().to_owned())
        .expect("a Call-ID")
}

#[test]
fn many_transactions_with_mixed_deadlines_retransmit_in_deadline_order() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    let mut rng = StdRng::seed_from_u64(11);
    // 200 INVITEs refused at scattered times within 900 ms: each 486 is retransmitted (timer
    // G) T1 = 500 ms after it was sent, the next time 1 s later, so the first 200
    // retransmissions are one per call, in the order the refusals were sent.
    let refused: Vec<(Instant, String)> = (0..200)
        .map(|n| {
            let at = t0 + Duration::from_micros(rng.gen_range(0..900_000));
            (at, format!("call-{n}"))
        })
        .collect();
    for (n, (_, call_id)) in refused.iter().enumerate() {
        ep.handle_datagram(t0, addr(CALLER), &invite(&format!("z9hG4bKm{n}"), call_id));
    }
    events(&mut ep);
    sent(&mut ep);
    let mut by_time = refused.clone();
    by_time.sort_by_key(|(at, _)| *at);
    for (at, call_id) in &by_time {
        ep.reject(*at, call_id, 486, "Busy Here", None);
    }
    assert_eq!(sent(&mut ep).len(), 200);
    let mut fired = Vec::new();
    while fired.len() < 200 {
        let next = ep.poll_timeout().expect("a retransmission is pending");
        assert_eq!(Some(next), brute_force_next(&ep));
        ep.handle_timeout(next);
        for message in sent(&mut ep) {
            assert!(message.starts_with("SIP/2.0 486"), "{message}");
            fired.push((next, call_id_of(&message)));
        }
    }
    let expected: Vec<_> = by_time
        .iter()
        .map(|(at, id)| (*at + Duration::from_millis(500), id.clone()))
        .collect();
    assert_eq!(fired, expected);
}

#[test]
fn an_acknowledged_refusal_does_not_retransmit_at_its_old_deadline() {
    let t0 = Instant::now();
    let mut ep = offered(t0);
    ep.reject(t0, "call-1", 486, "Busy Here", None);
    let busy = sent(&mut ep).pop().expect("486");
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    let ack = caller_request("ACK", "z9hG4bKa1", &to_tag(&busy), 1, "");
    ep.handle_datagram(t0, addr(CALLER), &ack);
    // The ACK moved the transaction to Confirmed: timer I (T4 = 5 s) replaces timer G.
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    ep.handle_timeout(t0 + Duration::from_millis(600));
    assert!(sent(&mut ep).is_empty(), "the stale timer G entry fired");
    ep.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(ep.poll_timeout(), None, "the transaction ended");
    assert_eq!(ep.deadlines.len(), 0);
}

#[test]
fn a_removed_transactions_entry_never_fires() {
    let t0 = Instant::now();
    let mut ep = endpoint();
    ep.handle_datagram(t0, addr(CALLER), &invite("z9hG4bKa1", "call-1"));
    ep.handle_datagram(t0, addr(CALLER), &invite("z9hG4bKa2", "call-2"));
    events(&mut ep);
    ep.reject(t0, "call-1", 486, "Busy Here", None);
    ep.reject(t0, "call-2", 486, "Busy Here", None);
    sent(&mut ep);
    let key = ep
        .invites
        .iter()
        .map(|(k, _)| k.clone())
        .find(|k| format!("{k:?}").contains("z9hG4bKa1"))
        .expect("call-1's transaction");
    ep.invites.remove(&key);
    ep.settle_timers();
    ep.handle_timeout(t0 + Duration::from_millis(500));
    let out = sent(&mut ep);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(call_id_of(&out[0]), "call-2");
    assert_eq!(ep.poll_timeout(), brute_force_next(&ep));
}

/// An INVITE, sometimes asking for a session timer (ours to refresh or the caller's).
fn random_invite(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let bytes = invite(&format!("z9hG4bKr{n}"), &format!("call-{n}"));
    let extra = match rng.gen_range(0..3) {
        0 => return bytes,
        1 => "Session-Expires: 90;refresher=uac\r\nSupported: timer\r\n",
        _ => "Session-Expires: 90;refresher=uas\r\nSupported: timer\r\n",
    };
    String::from_utf8_lossy(&bytes)
        .replacen(
            "CSeq: 1 INVITE\r\n",
            &format!("CSeq: 1 INVITE\r\n{extra}"),
            1,
        )
        .into_bytes()
}

/// One of the last 16 calls: they are the ones still in progress.
fn recent(rng: &mut StdRng, calls: usize) -> usize {
    rng.gen_range(calls.saturating_sub(16)..calls)
}

#[test]
fn poll_timeout_equals_the_earliest_deadline_of_every_owner_under_random_traffic() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut ep = endpoint();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    // Calls by id: Some(our To tag) once answered.
    let mut calls: Vec<(String, Option<String>)> = Vec::new();
    let mut fired = 0;
    let mut transfers = 0;
    for step in 0..3000 {
        match rng.gen_range(0..100) {
            0..=19 => {
                let n = calls.len();
                ep.handle_datagram(now, addr(CALLER), &random_invite(&mut rng, n));
                calls.push((format!("call-{n}"), None));
            }
            20..=34 if !calls.is_empty() => {
                let i = recent(&mut rng, calls.len());
                let call_id = calls[i].0.clone();
                if rng.gen_bool(0.7) {
                    ep.answer(now, &call_id, "v=0\r\n".into());
                    let tag = sent(&mut ep)
                        .iter()
                        .find(|m| m.starts_with("SIP/2.0 200") && m.contains(&call_id))
                        .map(|m| to_tag(m));
                    calls[i].1 = tag.or(calls[i].1.take());
                } else {
                    ep.reject(now, &call_id, 486, "Busy Here", None);
                }
            }
            35..=49 if !calls.is_empty() => {
                let i = recent(&mut rng, calls.len());
                if let (call_id, Some(tag)) = &calls[i] {
                    let ack = in_dialog("ACK", &format!("z9hG4bKk{step}"), call_id, tag, 1, "", "");
                    ep.handle_datagram(now, addr(CALLER), &ack);
                }
            }
            50..=59 if !calls.is_empty() => {
                let i = recent(&mut rng, calls.len());
                if let (call_id, Some(tag)) = &calls[i] {
                    let bye = in_dialog("BYE", &format!("z9hG4bKb{step}"), call_id, tag, 2, "", "");
                    ep.handle_datagram(now, addr(CALLER), &bye);
                }
            }
            60..=64 if !calls.is_empty() => {
                let i = recent(&mut rng, calls.len());
                ep.hangup(now, &calls[i].0.clone());
            }
            // A blind transfer: our REFER and the dialog's wait for the final NOTIFY.
            80..=84 if !calls.is_empty() => {
                let i = recent(&mut rng, calls.len());
                ep.transfer(now, &calls[i].0.clone(), "+15550002");
            }
            65..=79 => {
                // Straight to the next deadline, as the socket loop does.
                if let Some(next) = ep.poll_timeout() {
                    now = now.max(next);
                    ep.handle_timeout(now);
                    fired += 1;
                }
            }
            _ => {
                now += Duration::from_millis(rng.gen_range(0..4000));
                ep.handle_timeout(now);
            }
        }
        sent(&mut ep);
        transfers += ep
            .dialogs
            .values()
            .filter(|d| d.transfer.is_some() && d.session_timer.is_some())
            .count();
        events(&mut ep);
        assert_eq!(
            ep.poll_timeout(),
            brute_force_next(&ep),
            "step {step} at {:?}",
            now - t0
        );
    }
    assert!(
        transfers > 0,
        "no transfer ever waited beside a session timer"
    );
    assert!(fired > 100, "the run reached few deadlines ({fired})");
    assert!(
        now - t0 > Duration::from_secs(300),
        "the run covered little time"
    );
}
