//! Key presses kept out of a recorded call's record when the agent redacts card numbers: sipp
//! calls as a gateway that sends each key both ways — an RFC 4733 event and the keypad's tones
//! in its PCMU audio — between stretches of an ordinary 1 kHz tone. With `privacy.redact`
//! listing `card_number`, the recording downloaded through the API has the 1 kHz tone but no
//! key tone anywhere in the caller's channel (a tone detector run over it finds none), and the
//! `call.dtmf` records read `[digit]`. The same call to an agent that does not redact keeps
//! the key tones in the recording and the keys in the record, so the test can tell.

use serde_json::{json, Value};

use crate::support::keypad::{call_pressing, keys_heard};
use crate::support::world::World;

const KEYS: &str = "411";

/// Places the call, waits for its recording, and returns the `call.dtmf` digits and the
/// caller's channel of the recording as the API serves it.
async fn recorded_call(world: &World) -> (Vec<String>, Vec<i16>) {
    let (call, events) = call_pressing(world, KEYS).await;
    let digits = events
        .iter()
        .filter(|e| e.kind == "call.dtmf")
        .filter_map(|e| e.payload["digit"].as_str().map(str::to_owned))
        .collect();
    let (caller, _) = world.recording(&call.id).await;
    (digits, caller)
}

async fn world(privacy: Value) -> World {
    World::builder()
        .workspace("Payments")
        .agent(json!({"record": true, "privacy": privacy}))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_redacting_card_numbers_records_silence_for_key_presses_and_masks_the_digits() {
    let masked = world(json!({"redact": ["card_number"]})).await;
    let (digits, caller) = recorded_call(&masked).await;
    assert_eq!(
        digits,
        vec!["[digit]"; KEYS.len()],
        "the keys are not on record"
    );
    let loud = caller.iter().filter(|s| s.unsigned_abs() > 3_000).count();
    assert!(
        loud > 4_000,
        "the caller's 1 kHz tone is recorded: {loud} loud samples of {}",
        caller.len()
    );
    assert_eq!(keys_heard(&caller), "", "no key tone in the recording");
    masked.teardown().await;

    // The same call to an agent that does not redact: the keys are there to find.
    let plain = world(json!({})).await;
    let (digits, caller) = recorded_call(&plain).await;
    assert_eq!(digits.concat(), KEYS);
    assert_eq!(
        keys_heard(&caller),
        KEYS,
        "the detector finds unmasked keys"
    );
    plain.teardown().await;
}
