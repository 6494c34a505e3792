//! What the caller heard and what the record says they heard: a finished sentence spoken while
//! the model pauses, the words before a tool call dated when they were played, the last reply
//! kept when the call ends during it, a failed transfer answered by the model.

use std::time::Duration;

use super::harness::{agent, Sim};
use crate::call::conversation::tests::{done, token};
use crate::call::provider_request::ProviderRequest;

fn speaks(sim: &Sim) -> Vec<(u64, String)> {
    sim.requests
        .iter()
        .filter_map(|(at, r)| match r {
            ProviderRequest::Speak { text, .. } => Some((sim.ms(*at), text.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_finished_sentence_is_spoken_while_the_model_pauses_before_the_next() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.answers.transcripts.push_back(Ok("Hi.".into()));
    sim.answers.completions.push_back(vec![
        (
            Duration::from_millis(300),
            Ok(token("First sentence is here. ")),
        ),
        (Duration::from_millis(1000), Ok(token("Second one."))),
        (Duration::from_millis(10), Ok(done())),
    ]);
    sim.say(600);
    sim.run_for(5000);
    let complete = sim
        .requests_where(|r| matches!(r, ProviderRequest::Complete { .. }))
        .first()
        .map(|(at, _)| sim.ms(*at))
        .expect("the model is asked");
    let token_at = complete + 300;
    let said = speaks(&sim);
    let [(first_at, first), (second_at, second)] = &said[..] else {
        panic!("two sentences: {said:?}");
    };
    assert_eq!(first, "First sentence is here.");
    assert_eq!(second, "Second one.");
    assert!(
        *first_at >= token_at + 150 && *first_at <= token_at + 170,
        "the first sentence went to speech {} ms after its last token, not at the next one",
        first_at - token_at
    );
    assert!(*second_at >= token_at + 1000);
    let heard = sim
        .first_sound_after(sim.t0 + Duration::from_millis(token_at))
        .expect("the reply is heard");
    assert!(
        sim.ms(heard) < token_at + 1000,
        "the caller hears the first sentence during the model's pause ({} ms after its token)",
        sim.ms(heard) - token_at
    );
}

#[test]
fn an_abbreviation_before_the_pause_still_waits_for_the_next_word() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.answers.transcripts.push_back(Ok("Who?".into()));
    sim.answers.completions.push_back(vec![
        (Duration::from_millis(300), Ok(token("You will see Dr. "))),
        (Duration::from_millis(1000), Ok(token("Smith today."))),
        (Duration::from_millis(10), Ok(done())),
    ]);
    sim.say(600);
    sim.run_for(5000);
    let said: Vec<String> = speaks(&sim).into_iter().map(|(_, t)| t).collect();
    assert_eq!(said, ["You will see Dr. Smith today."]);
}
