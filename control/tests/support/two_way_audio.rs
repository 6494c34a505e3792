//! A phone and an agent that must hear each other: the world (an agent that greets at once and
//! records every call, speaking through the fake voice servers) and the check that the phone's
//! tone is in the call's recording and the agent's greeting in what the phone decoded.

use freya_edge::EdgeConfig;

use super::baresip::Baresip;
use super::tones::audible_ms;
use super::world::World;

/// A world of workspace `workspace` whose agent answers `number`, greets and records, on an
/// edge configured by `configure`.
pub async fn greeting_desk(
    workspace: &str,
    number: &str,
    configure: impl FnOnce(&mut EdgeConfig) + Send + 'static,
) -> World {
    World::builder()
        .workspace(workspace)
        .agent(serde_json::json!({
            "name": "Desk",
            "first_message": "Hello, you are through to the desk. How can I help you today?",
            "record": true,
        }))
        .number(number)
        .voice()
        .edge_config(configure)
        .start()
        .await
}

/// Asserts that both sides of call `call_id` heard each other: the phone's tone in the edge's
/// recording of the far party, the agent's greeting in what the phone decoded. `context` is
/// added to the report of a failure.
pub async fn assert_heard_both_ways(w: &World, phone: &Baresip, call_id: &str, context: &str) {
    let (far, agent) = w.recording(call_id).await;
    let heard = phone.received_audio();
    let report = format!(
        "audible ms: phone sent {}, edge recorded the phone {}, the agent {}, phone decoded {}; \
         files {:?}; spoken {:?}; {context}",
        audible_ms(&phone.sent_audio()),
        audible_ms(&far),
        audible_ms(&agent),
        audible_ms(&heard),
        phone.files(),
        w.spoken(),
    );
    assert!(
        audible_ms(&far) > 1_500,
        "the edge decrypted and decoded the phone's tone: {report}"
    );
    assert!(
        audible_ms(&heard) > 300,
        "the phone decrypted and decoded the agent's greeting: {report}\n{}",
        phone.trace()
    );
}
