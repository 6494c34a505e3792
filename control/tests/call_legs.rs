//! A second party on a call, over real sockets: a hand-written SIP caller dials the world's
//! agent, the API dials a second party (a hand-written SIP UAS behind the workspace's trunk),
//! bridges them with the agent muted, and RTP crosses from caller to party and back — told
//! apart by tone: the caller sends 440 Hz, the party 1800 Hz, and each side's received audio is
//! measured at the other's frequency. The hostile requests are tried on the same call: a
//! destination the agent may not transfer to (422 naming `to`), unknown legs (404), a leg
//! bridged with itself (422) and one not yet up (409). When the caller hangs up, the party gets
//! our BYE. And the agent's own warm transfer: its model (the fake OpenAI server) asks for one,
//! the party answers, hears the whisper alone, and is bridged to the caller with the agent muted.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::http::{Answer, Api};
use crate::support::party::Party;
use crate::support::raw_sip::{Call, Offer};
use crate::support::tones::{
    loud, packets_where, packets_with, send_speech, send_tone, CALLER_HZ, PARTY_HZ,
};
use crate::support::world::{udp_trunk, World};
use crate::support::{eventually, on_both_engines, Backend};
use freya_control::store::{Role, StoredEvent};
use freya_edge::llm::fakes::FakeReply;
use freya_loadtest::audio::Utterance;

const PARTY: &str = "+4733333333";

/// `POST /v1/calls/{id}/bridge` of `legs`, the agent muted.
async fn bridge(api: &Api, key: &str, id: &str, legs: [u8; 2]) -> Answer {
    let body = json!({"legs": legs, "agent": "muted"});
    api.call("POST", &format!("/v1/calls/{id}/bridge"), key, Some(body))
        .await
}

async fn the_api_dials_a_second_party_bridges_it_and_rtp_crosses_both_ways(backend: Backend) {
    let w = World::builder()
        .backend(backend)
        .agent(json!({"transfer_destinations": [PARTY]}))
        .start()
        .await;
    let party = Party::bind().await;
    w.set_trunks(vec![udp_trunk("party", party.port(), 1)]);
    let (api, key) = (Api::of(&w.control), w.key(Role::Editor).await);

    let (call, caller_rtp, caller_tone) = Call::sending_tone(
        w.edge.sip_addr,
        &w.number,
        "legs-1@caller.test",
        Some(CALLER_HZ),
    )
    .await;
    let id = w.call_in_status("in_progress").await.id;
    let path = |tail: &str| format!("/v1/calls/{id}{tail}");

    // A destination the agent may not transfer to is refused, naming the field.
    let refused = api
        .call(
            "POST",
            &path("/legs"),
            &key,
            Some(json!({"to": "+4700000000"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["errors"][0]["field"], "to", "{}", refused.body);
    let unknown = api.call("DELETE", &path("/legs/5"), &key, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let unknown_call = bridge(&api, &key, "nope", [0, 1]).await;
    assert_eq!(unknown_call.status, StatusCode::NOT_FOUND);
    let itself = bridge(&api, &key, &id, [0, 0]).await;
    assert_eq!(itself.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(itself.body["errors"][0]["field"], "legs");

    let dialled = api
        .call("POST", &path("/legs"), &key, Some(json!({"to": PARTY})))
        .await;
    assert_eq!(dialled.status, StatusCode::ACCEPTED, "{}", dialled.body);
    assert_eq!(dialled.body["leg"], 1);
    let (invite, edge_sip) = party.receives("INVITE").await;
    assert!(invite
        .lines()
        .next()
        .is_some_and(|l| l.contains("4733333333")));
    w.event("call.leg_added").await;
    // Ringing, not up: it cannot be bridged yet.
    let early = bridge(&api, &key, &id, [0, 1]).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);

    let (party_rtp, edge_leg_rtp) = party.answer(&invite, edge_sip).await;
    party.receives("ACK").await;
    w.event("call.leg_answered").await;
    let party_tone = send_tone(party_rtp.clone(), edge_leg_rtp, Some(PARTY_HZ));

    let bridged = bridge(&api, &key, &id, [0, 1]).await;
    assert_eq!(bridged.status, StatusCode::ACCEPTED, "{}", bridged.body);
    w.event("call.bridged").await;
    let limit = Duration::from_secs(10);
    let ((to_party, _), (to_caller, _)) = tokio::join!(
        packets_with(&party_rtp, CALLER_HZ, 25, limit),
        packets_with(&caller_rtp, PARTY_HZ, 25, limit),
    );
    assert_eq!(to_party, 25, "the caller's tone reaches the party");
    assert_eq!(to_caller, 25, "the party's tone reaches the caller");

    // The caller hangs up: the party is hung up too.
    call.hang_up(2).await;
    party.hung_up().await;
    let ended = w.event("call.leg_ended").await;
    assert_eq!(ended.payload["reason"], "call_ended");
    caller_tone.abort();
    party_tone.abort();
    w.teardown().await;
}

on_both_engines!(multi_thread; the_api_dials_a_second_party_bridges_it_and_rtp_crosses_both_ways);

/// The agent's model asks for a warm transfer: the party is dialled through the trunk, hears
/// the whisper alone, and is then bridged to the caller, the agent gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_warm_transfer_whispers_to_the_party_then_bridges_the_caller() {
    let w = World::builder()
        .voice()
        .agent(json!({"name": "Switchboard", "transfer_destinations": [PARTY]}))
        .start()
        .await;
    w.speech()
        .set_default_transcript("Put me through to sales, please.");
    w.llm().push_reply(FakeReply::tool_call(
        "call_1",
        "transfer_call",
        json!({"destination": PARTY, "mode": "warm", "whisper": "A caller for sales."}),
    ));
    w.llm().respond_with(|_| FakeReply::text("One moment."));
    let party = Party::bind().await;
    w.set_trunks(vec![udp_trunk("party", party.port(), 1)]);

    let (call, rtp) = Call::dialled(
        w.edge.sip_addr,
        &w.number,
        "warm-1@caller.test",
        Offer::PcmuWithEvents,
    )
    .await;
    let caller_rtp = Arc::new(rtp);
    let spoken = Utterance::speak("Put me through to sales, please.").expect("espeak-ng");
    let caller_speech = send_speech(caller_rtp.clone(), call.edge_rtp, spoken.samples.to_vec());

    let (invite, edge_sip) = party.receives("INVITE").await;
    let (party_rtp, edge_leg_rtp) = party.answer(&invite, edge_sip).await;
    // The party listens (silence) while the whisper plays.
    let party_line = send_speech(party_rtp.clone(), edge_leg_rtp, Vec::new());
    let (whispered, _) = packets_where(&party_rtp, 10, Duration::from_secs(10), loud).await;
    assert_eq!(whispered, 10, "the party hears the agent's whisper");
    let call_id = w.call_in_status("in_progress").await.id;
    let of_kind = |events: &[StoredEvent], kind: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.payload.clone())
            .collect()
    };
    let events = eventually(
        Duration::from_secs(15),
        "the warm transfer to succeed",
        || async {
            let events = w.events_of(&call_id).await;
            let done = of_kind(&events, "call.transfer")
                .iter()
                .any(|t| t["status"] == "succeeded");
            done.then_some(events)
        },
    )
    .await;
    let statuses: Vec<serde_json::Value> = of_kind(&events, "call.transfer")
        .into_iter()
        .map(|t| t["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("requested"), json!("succeeded")]);
    assert_eq!(
        of_kind(&events, "call.bridged"),
        [
            json!({"legs": [1], "agent": "whisper", "whisper_to": 1}),
            json!({"legs": [0, 1], "agent": "muted"})
        ]
    );
    assert_eq!(
        of_kind(&events, "call.leg_added"),
        [json!({"leg": 1, "to": PARTY, "by": "agent"})]
    );
    caller_speech.abort();
    party_line.abort();
    call.hang_up(2).await;
    party.hung_up().await;
    w.teardown().await;
}
