//! Criterion benches of route sets (RFC 3261 section 12): what a Record-Route costs our side of
//! a dialog — building the dialog from an INVITE (the route set is read once) and writing our
//! BYE (Route headers, strict-routing rewrite) — against the same call with no proxy. Figures
//! and the command that produced them are in `loadtest/BENCHMARKS.md` ("SIP route sets");
//! nothing here asserts on speed.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use freya_sip::dialog::Dialog;
use freya_sip::response::to_bytes;
use freya_sip::{parse_message, Peer, TransactionKey};
use rsip::SipMessage;

fn invite(record_routes: &str) -> rsip::Request {
    let text = format!(
        "INVITE sip:demo@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.3:5070;branch=z9hG4bKproxy\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKa1;rport\r\n\
         {record_routes}\
         Max-Forwards: 69\r\n\
         From: <sip:+15550001@127.0.0.1>;tag=caller1\r\n\
         To: <sip:demo@127.0.0.1:5060>\r\n\
         Call-ID: bench-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:40000>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match parse_message(text.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("not a request: {other:?}"),
    }
}

fn routes(c: &mut Criterion) {
    let peer = Peer::udp("127.0.0.3:5070".parse().expect("address"));
    let local = "127.0.0.1:5060".parse().expect("address");
    let cases = [
        ("no route set", String::new()),
        (
            "3 loose routes",
            "Record-Route: <sip:127.0.0.3:5070;lr;ftag=caller1>, <sip:127.0.0.4;lr>\r\n\
             Record-Route: <sip:127.0.0.5:5090;lr>\r\n"
                .to_owned(),
        ),
        (
            "strict first route",
            "Record-Route: <sip:127.0.0.3:5070;ftag=caller1>\r\n\
             Record-Route: <sip:127.0.0.4;lr>\r\n"
                .to_owned(),
        ),
    ];
    for (name, headers) in cases {
        let invite = invite(&headers);
        let key = TransactionKey::server(&invite).expect("key");
        c.bench_function(&format!("sip routes: dialog from INVITE, {name}"), |b| {
            b.iter(|| black_box(Dialog::from_invite(black_box(&invite), peer, key.clone())))
        });
        let dialog = Dialog::from_invite(&invite, peer, key.clone()).expect("dialog");
        c.bench_function(&format!("sip routes: our BYE written, {name}"), |b| {
            b.iter_batched_ref(
                || dialog.clone(),
                |d| {
                    let bye = d.bye(local).expect("BYE");
                    black_box((d.next_hop(), to_bytes(bye)))
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
}

criterion_group!(benches, routes);
criterion_main!(benches);
