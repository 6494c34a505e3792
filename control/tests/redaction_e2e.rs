//! `privacy.redact` end to end: a control plane and an edge in-process, a real SIP call from the
//! project's UAC speaking espeak-ng audio, and a fake speech-to-text that hears the caller say a
//! card number and an e-mail address. With `redact_before_llm` the fake model never receives
//! them, and no stored call event holds them.

use std::time::Duration;

use crate::support::voice_call::{of_kind, only_call_events, patient_caller, place_spoken_call};
use crate::support::world::World;
use freya_edge::llm::fakes::FakeReply;
use freya_edge::sip::sdp::Codec;

const HEARD: &str =
    "my card is 4111 1111 1111 1111 and my email is bob dot smith at example dot com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_number_and_an_email_reach_neither_the_model_nor_the_record() {
    let w = World::builder()
        .workspace("Payments")
        .voice()
        .agent(serde_json::json!({
            "name": "Payments desk",
            "system_prompt": "You take payments.",
            "first_message": "Hello.",
            "privacy": {"redact": ["card_number", "email"], "redact_before_llm": true}
        }))
        .start()
        .await;
    w.llm()
        .respond_with(|_| FakeReply::text("Thank you, that is noted."));
    w.speech().set_default_transcript(HEARD);
    let talker = patient_caller(Duration::from_millis(1500));
    let report = place_spoken_call(
        w.edge.sip_addr,
        Codec::Pcmu,
        &["My card number and my email address."],
        talker,
        Duration::from_secs(9),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.failure);

    let requests = w.llm().requests();
    assert!(!requests.is_empty(), "the model was asked");
    let texts: Vec<String> = requests.iter().flat_map(|r| r.user_texts()).collect();
    assert_eq!(
        texts[0], "my card is [card_number] and my email is [email]",
        "{texts:?}"
    );

    let events = only_call_events(&w.control, &w.scope).await;
    let stored = serde_json::to_string(&events).expect("json");
    for secret in ["4111 1111 1111 1111", "bob dot smith", "example dot com"] {
        assert!(!stored.contains(secret), "{secret} in {stored}");
    }
    let caller_lines: Vec<&str> = of_kind(&events, "call.transcript")
        .iter()
        .filter(|e| e.payload["role"] == "caller")
        .filter_map(|e| e.payload["text"].as_str())
        .collect();
    assert_eq!(
        caller_lines,
        ["my card is [card_number] and my email is [email]"]
    );
    w.stop().await;
}
