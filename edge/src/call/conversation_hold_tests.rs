//! The conversation across a hold: the silence reprompt waits its whole time again from the
//! resume, instead of asking "are you still there?" the moment the caller is back.

use super::tests::{config, Harness};
use super::*;

#[test]
fn a_resumed_call_waits_a_whole_reprompt_time_before_asking_again() {
    // No greeting: the agent waits for the caller, its reprompt armed from the answer.
    let mut h = Harness::new(ConversationConfig {
        first_message: None,
        ..config()
    });
    assert_eq!(h.c.poll_timeout(), Some(h.at(8000)), "reprompt armed");
    // Held from 2 s to 60 s: the call task gives the conversation no time meanwhile.
    h.c.resume_after_hold(h.at(60_000));
    assert_eq!(h.c.poll_timeout(), Some(h.at(68_000)));
    h.c.handle_timeout(h.at(60_001));
    assert!(h.drain().is_empty(), "nothing said at the resume");
}

#[test]
fn a_resume_arms_no_reprompt_where_none_was_due() {
    let mut h = Harness::new(config());
    // The greeting is still being prepared: no reprompt is armed, and the resume adds none.
    assert_eq!(h.c.poll_timeout(), None);
    h.c.resume_after_hold(h.at(5_000));
    assert_eq!(h.c.poll_timeout(), None);
}
