//! The call slots: unconfirmed calls have their own budget and per-source share, confirmed ones
//! the capacity.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn slots() -> CallSlots {
    CallSlots::new(SlotLimits {
        capacity: 10,
        max_unconfirmed: 4,
        max_unconfirmed_per_source: 2,
    })
}

/// What an INVITE that passes the check does to the slots.
fn invite(slots: &mut CallSlots, call_id: &str, source: &str) -> Result<(), NoSlot> {
    slots.check_inbound(ip(source))?;
    slots.take_inbound(call_id, ip(source));
    Ok(())
}

#[test]
fn a_flood_that_never_acks_holds_only_its_sources_share() {
    let mut slots = slots();
    let mut refused = 0;
    for n in 0..100 {
        match invite(&mut slots, &format!("flood-{n}"), "127.0.0.1") {
            Ok(()) => {}
            Err(NoSlot::SourceUnconfirmedFull) => refused += 1,
            Err(other) => panic!("unexpected refusal {other:?}"),
        }
    }
    assert_eq!(refused, 98);
    assert_eq!(slots.unconfirmed_from(ip("127.0.0.1")), 2);
    // A real caller from another address is still taken, and once it ACKs it is confirmed.
    assert_eq!(invite(&mut slots, "real", "127.0.0.2"), Ok(()));
    slots.confirm("real");
    assert_eq!((slots.carried(), slots.unconfirmed()), (1, 2));
}

#[test]
fn the_unconfirmed_budget_caps_floods_from_many_addresses_but_not_confirmed_calls() {
    let mut slots = slots();
    for n in 1..=4 {
        assert_eq!(
            invite(&mut slots, &format!("f{n}"), &format!("10.0.0.{n}")),
            Ok(())
        );
    }
    assert_eq!(
        slots.check_inbound(ip("10.0.0.9")),
        Err(NoSlot::UnconfirmedFull)
    );
    // Capacity is untouched: all ten confirmed slots are still free.
    assert_eq!(slots.carried(), 0);
    // A lost ACK frees the slot for the next caller.
    slots.release("f1");
    assert_eq!(invite(&mut slots, "next", "10.0.0.9"), Ok(()));
}

#[test]
fn confirmed_calls_fill_the_capacity_and_unconfirmed_ones_do_not() {
    let mut slots = slots();
    for n in 0..10 {
        let id = format!("c{n}");
        // Each caller from its own address, answered and acknowledged.
        invite(&mut slots, &id, &format!("10.1.0.{n}")).expect("room");
        slots.confirm(&id);
    }
    assert_eq!(slots.carried(), 10);
    assert_eq!(slots.unconfirmed(), 0);
    assert_eq!(slots.check_inbound(ip("10.2.0.1")), Err(NoSlot::AtCapacity));
    slots.release("c3");
    assert_eq!(slots.check_inbound(ip("10.2.0.1")), Ok(()));
}

#[test]
fn confirm_and_release_are_idempotent_and_ignore_strangers() {
    let mut slots = slots();
    invite(&mut slots, "a", "127.0.0.1").expect("room");
    slots.confirm("a");
    slots.confirm("a"); // a retransmitted ACK
    assert_eq!((slots.carried(), slots.unconfirmed()), (1, 0));
    slots.confirm("nobody");
    slots.release("nobody");
    slots.release("a");
    slots.release("a");
    assert_eq!((slots.carried(), slots.unconfirmed()), (0, 0));
    // The same Call-ID taken twice holds one slot.
    slots.take_inbound("b", ip("127.0.0.1"));
    slots.take_inbound("b", ip("127.0.0.1"));
    assert_eq!(slots.unconfirmed_from(ip("127.0.0.1")), 1);
    slots.release("b");
    assert_eq!(slots.unconfirmed_from(ip("127.0.0.1")), 0);
}

#[test]
fn outbound_calls_count_against_capacity_only() {
    let mut slots = slots();
    for n in 0..10 {
        slots.take_outbound(&format!("out{n}"));
    }
    assert_eq!((slots.carried(), slots.unconfirmed()), (10, 0));
    assert_eq!(slots.check_inbound(ip("10.2.0.1")), Err(NoSlot::AtCapacity));
    slots.release("out0");
    assert_eq!(slots.carried(), 9);
}

#[test]
fn an_ipv6_flood_is_charged_to_its_slash_64() {
    let mut slots = slots();
    assert_eq!(invite(&mut slots, "a", "2001:db8::1"), Ok(()));
    assert_eq!(invite(&mut slots, "b", "2001:db8::2"), Ok(()));
    assert_eq!(
        invite(&mut slots, "c", "2001:db8::3"),
        Err(NoSlot::SourceUnconfirmedFull)
    );
}
