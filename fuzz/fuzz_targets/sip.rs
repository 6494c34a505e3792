//! Fuzzes the SIP receive path: any datagram through `parse_message` + `validate`, the
//! transaction key and a 400 for what parses but fails validation, then through a fresh
//! `SipEndpoint::handle_datagram` with every transmit, event and timer drained. Nothing may
//! panic, whatever the bytes.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use freya_edge::sip::endpoint::SipEndpoint;
use freya_edge::sip::{
    bad_request, parse_message, parse_unvalidated, validate, Timers, TransactionKey,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = parse_unvalidated(data) {
        let valid = validate(&message);
        if let rsip::SipMessage::Request(request) = &message {
            let _ = TransactionKey::server(request);
            if let Err(error) = &valid {
                let _ = bad_request(request, error);
            }
        }
    }
    let _ = parse_message(data);

    let local: SocketAddr = ([127, 0, 0, 1], 5060).into();
    let peer: SocketAddr = ([192, 0, 2, 1], 5060).into();
    let start = Instant::now();
    let mut endpoint = SipEndpoint::new(local, Timers::default());
    endpoint.handle_datagram(start, peer, data);
    // The same bytes again: a retransmission must be absorbed just as safely.
    endpoint.handle_datagram(start + Duration::from_millis(10), peer, data);
    for step in 1..=4u64 {
        while endpoint.poll_transmit().is_some() {}
        while endpoint.poll_event().is_some() {}
        let now = start + Duration::from_secs(step * 16);
        endpoint.handle_timeout(now);
    }
});
