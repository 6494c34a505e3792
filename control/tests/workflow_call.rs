//! Workflows on real calls: a control plane and an edge in-process, a number that routes to a
//! published workflow, sipp (a foreign SIP peer) placing the call, and the test itself playing
//! the caller's RTP — silence, and an RFC 4733 key press — from the address sipp's offer names,
//! while it listens to what the flow says. The providers are the offline ones (espeak, the local
//! recogniser, rules). Each test checks what the caller heard and the call's `workflow_steps` as
//! `GET /v1/calls/{id}` shows them. Nothing here asserts on speed.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use serde_json::{json, Value};

use crate::support::caller::{caller_media_on_loopback, epoch_ms, sipp, sipp_scenario, Heard};
use crate::support::eventually;
use crate::support::http::Api;
use crate::support::local_http::serve;
use crate::support::world::World;
use freya_control::store::Role;

/// The example flow of the workflow issue, with `sales` handing calls to `agent`.
fn support_line(agent: &str) -> Value {
    support::flows::support_line(agent, 30000)
}

/// A flow whose customer lookup (a `function` node) decides what the caller hears.
fn lookup_line(url: &str) -> Value {
    json!({"name": "Lookup line", "start": "lookup",
    "voice": {"tts": {"provider": "espeak"}, "stt": {"provider": "local"}, "llm": {"provider": "rules"}},
    "nodes": [
     {"id": "lookup", "type": "function", "url": url, "method": "POST",
      "body": {"phone": "{{caller_number}}", "call": "{{call_id}}"},
      "save_as": "customer", "timeout_ms": 10000, "next": "remember", "on_error": "sorry"},
     {"id": "remember", "type": "set", "assign": {"tier": "customer.tier"}, "next": "route"},
     {"id": "route", "type": "condition", "branches": [{"when": "tier == 'gold'", "next": "vip"}], "else": "standard"},
     {"id": "vip", "type": "say", "text": "Welcome back, {{customer.name}}.", "next": "bye"},
     {"id": "standard", "type": "say", "text": "Thanks for calling.", "next": "bye"},
     {"id": "sorry", "type": "say", "text": "Our systems are down.", "next": "bye"},
     {"id": "bye", "type": "end"}
    ]})
}

/// A control plane and an edge; number `flow` answered by `flow` (built with the sales agent's
/// id), published once.
async fn world(flow: impl FnOnce(&str) -> Value + Send + 'static) -> World {
    world_with_sales(json!({"name": "Sales"}), flow).await
}

/// As [`world`], with the sales agent defined by `sales`.
async fn world_with_sales(
    sales: Value,
    flow: impl FnOnce(&str) -> Value + Send + 'static,
) -> World {
    World::builder()
        .workspace("Flows")
        .agent(sales)
        .number("flow")
        .workflow(flow)
        .start()
        .await
}

/// The one call, once it has ended, as `GET /v1/calls/{id}` shows it.
async fn finished_flow(w: &World) -> Value {
    let id = eventually(Duration::from_secs(20), "the call to end", || async {
        let calls = w.control.store.calls(&w.scope, 5).await.ok()?;
        let call = calls.first()?;
        call.ended_at_ms.is_some().then(|| call.id.clone())
    })
    .await;
    // The owner's view: a viewer's would hide the steps' values.
    let (api, key) = (Api::of(&w.control), w.key(Role::Owner).await);
    // The last events may follow the end by a moment.
    eventually(Duration::from_secs(10), "the flow's last step", || async {
        let call = api
            .call("GET", &format!("/v1/calls/{id}"), &key, None)
            .await;
        let finished = call.body["workflow_steps"]
            .as_array()?
            .iter()
            .any(|s| s["step"] == "finished");
        finished.then_some(call.body)
    })
    .await
}

fn steps_of<'a>(call: &'a Value, step: &str) -> Vec<&'a Value> {
    call["workflow_steps"]
        .as_array()
        .map(|steps| steps.iter().filter(|s| s["step"] == step).collect())
        .unwrap_or_default()
}

fn entered(call: &Value) -> Vec<String> {
    steps_of(call, "node_entered")
        .iter()
        .filter_map(|s| s["node"].as_str().map(str::to_owned))
        .collect()
}

/// A caller (sipp's signalling, the test's RTP) dials the flow's number, presses `key` once
/// what it heard passes `ready` (`what` names that moment), and hangs up as sipp's script
/// says: what it heard, and when it pressed.
async fn press_when(
    w: &World,
    key: u8,
    what: &str,
    ready: fn(&[(i64, bool)]) -> bool,
) -> (Heard, i64) {
    let (rtp_port, heard, press) = caller_media_on_loopback().await;
    let call = tokio::spawn(sipp(w.edge.sip_addr, "flow", rtp_port));
    eventually(Duration::from_secs(30), what, || {
        let heard = heard.clone();
        async move { ready(&heard.lock().ok()?).then_some(()) }
    })
    .await;
    let pressed_at = epoch_ms();
    press.send_replace(Some(key));
    assert_eq!(
        call.await.expect("sipp task"),
        0,
        "sipp's call went as scripted"
    );
    (heard, pressed_at)
}

/// The lines of the call's transcript, in order.
fn transcript(call: &Value) -> Vec<&str> {
    call["transcript"]
        .as_array()
        .expect("transcript")
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_presses_two_hears_the_accounts_line() {
    let w = world(support_line).await;
    // Wait for the greeting to be heard and to end (a second of quiet after speech), then press.
    let (heard, pressed_at) = press_when(&w, 2, "the greeting, then quiet", |heard| {
        let Some(last_voiced) = heard.iter().rev().find(|(_, voiced)| *voiced) else {
            return false;
        };
        heard.iter().filter(|(at, _)| *at > last_voiced.0).count() >= 50
    })
    .await;

    let call = finished_flow(&w).await;
    assert_eq!(call["status"], "ended", "{call}");
    assert_eq!(call["end_reason"], "workflow_completed");
    assert_eq!(call["workflow"]["version"], 1);
    assert_eq!(call["agent_id"], Value::Null);
    assert_eq!(
        entered(&call),
        ["greet", "menu", "route", "accounts", "bye"],
        "{call}"
    );
    let changed = steps_of(&call, "variables_changed");
    assert_eq!(changed[0]["changes"], json!({"choice": "2"}));
    let branch = steps_of(&call, "branch_taken");
    assert_eq!(branch.len(), 1, "{call}");
    assert_eq!(
        (
            &branch[0]["node"],
            &branch[0]["branch"],
            &branch[0]["target"]
        ),
        (&json!("route"), &json!(1), &json!("accounts"))
    );
    assert!(
        branch[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("choice == '2'"),
        "{}",
        branch[0]
    );
    assert_eq!(steps_of(&call, "finished")[0]["outcome"], "completed");
    let digits: Vec<&Value> = call["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "call.dtmf")
        .map(|e| &e["payload"]["digit"])
        .collect();
    assert_eq!(digits, [&json!("2")]);
    let lines = transcript(&call);
    assert_eq!(
        lines,
        [
            "Welcome to Acme. Press one for sales, two for accounts.",
            "Connecting you to billing.",
            "Goodbye."
        ]
    );
    // Every line the flow spoke went to synthesis once and was played to the end.
    let spoken: usize = lines.iter().map(|l| l.chars().count()).sum();
    let usage = &call["usage"];
    assert_eq!(usage["agent_characters_synthesized"], spoken, "{usage}");
    assert_eq!(usage["agent_characters_played"], spoken, "{usage}");
    // The caller heard the accounts line (and the goodbye) after pressing: at least half a
    // second of speech, where before the key there was only the waiting menu's quiet.
    let heard = heard.lock().expect("heard").clone();
    let spoken_after = heard
        .iter()
        .filter(|(at, voiced)| *voiced && *at > pressed_at)
        .count();
    assert!(
        spoken_after >= 25,
        "{spoken_after} packets of speech after the key"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_nodes_answer_steers_the_flow() {
    let asked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let server = {
        let asked = asked.clone();
        axum::Router::new().route(
            "/customers",
            post(move |axum::Json(body): axum::Json<Value>| {
                let asked = asked.clone();
                async move {
                    let gold = body["phone"] == "+15550001";
                    asked.lock().expect("asked").push(body);
                    axum::Json(if gold {
                        json!({"tier": "gold", "name": "Ada"})
                    } else {
                        json!({"tier": "basic", "name": "Someone"})
                    })
                }
            }),
        )
    };
    let url = format!("http://{}/customers", serve(server).await);

    let w = world(move |_| lookup_line(&url)).await;
    let (rtp_port, heard, _press) = caller_media_on_loopback().await;
    assert_eq!(
        sipp(w.edge.sip_addr, "flow", rtp_port).await,
        0,
        "sipp's call went as scripted"
    );

    let call = finished_flow(&w).await;
    let asked = asked.lock().expect("asked").clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["phone"], "+15550001");
    assert_eq!(asked[0]["call"], call["id"]);
    assert_eq!(
        entered(&call),
        ["lookup", "remember", "route", "vip", "bye"],
        "{call}"
    );
    let function = steps_of(&call, "function_completed");
    assert_eq!(function[0]["status"], 200);
    assert_eq!(function[0]["ok"], true);
    let branch = steps_of(&call, "branch_taken");
    assert_eq!(branch[0]["target"], "vip", "{call}");
    let lines = transcript(&call);
    assert_eq!(lines, ["Welcome back, Ada."]);
    assert_eq!(call["end_reason"], "workflow_completed");
    assert!(
        heard
            .lock()
            .expect("heard")
            .iter()
            .filter(|(_, v)| *v)
            .count()
            >= 25,
        "the caller heard the greeting"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_presses_one_is_handed_to_the_sales_agent_and_back() {
    // The agent greets, asks twice whether the caller is still there, then gives up: the flow
    // takes the call back and goes on to its `next` node.
    let sales = json!({"name": "Sales", "first_message": "Sales here.",
                       "silence_reprompt_seconds": 1,
                       "tts": {"provider": "espeak"}, "stt": {"provider": "local"}, "llm": {"provider": "rules"}});
    let w = world_with_sales(sales, support_line).await;
    // Pressed while the menu is still being read: the digit is kept for the menu.
    press_when(&w, 1, "the greeting", |heard| {
        heard.iter().any(|(_, voiced)| *voiced)
    })
    .await;

    let call = finished_flow(&w).await;
    assert_eq!(
        entered(&call),
        ["greet", "menu", "route", "sales", "bye"],
        "{call}"
    );
    let returned = steps_of(&call, "agent_returned");
    assert_eq!(returned.len(), 1, "{call}");
    assert_eq!(returned[0]["exit"], "finished");
    let lines = transcript(&call);
    assert_eq!(
        lines.first(),
        Some(&"Welcome to Acme. Press one for sales, two for accounts.")
    );
    assert!(lines.contains(&"Sales here."), "{lines:?}");
    assert_eq!(lines.last(), Some(&"Goodbye."));
    assert_eq!(call["end_reason"], "workflow_completed");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_node_transfers_the_caller_by_refer() {
    let w = world(|_| {
        json!({"name": "Straight through", "start": "hello",
        "voice": {"tts": {"provider": "espeak"}},
        "nodes": [
         {"id": "hello", "type": "say", "text": "Transferring you.", "next": "handoff"},
         {"id": "handoff", "type": "transfer", "to": "+15551234567"}
        ]})
    })
    .await;
    let (rtp_port, _, _press) = caller_media_on_loopback().await;
    // sipp checks the REFER's target, accepts it, reports success and receives our BYE.
    assert_eq!(
        sipp_scenario(
            w.edge.sip_addr,
            "flow",
            rtp_port,
            "uac_workflow_transfer.xml"
        )
        .await,
        0,
        "sipp's call went as scripted"
    );
    let call = finished_flow(&w).await;
    assert_eq!(call["end_reason"], "transferred", "{call}");
    assert_eq!(entered(&call), ["hello", "handoff"]);
    assert_eq!(steps_of(&call, "finished")[0]["outcome"], "transferred");
    let statuses: Vec<&str> = call["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "call.transfer")
        .filter_map(|e| e["payload"]["status"].as_str())
        .collect();
    assert_eq!(
        statuses,
        ["requested", "accepted", "trying", "succeeded"],
        "{call}"
    );
    w.stop().await;
}
