//! `GET /v1/analytics/calls` on SQLite and PostgreSQL: calls fed in as edge events land in the
//! right hour or day bucket and group, with counts, answered calls, talk time and end reasons;
//! bad parameters answer 400 naming the parameter; another workspace's calls never count.

use crate::support;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::http::workspace_with_keys;
use crate::support::on_both_engines;
use crate::support::Backend;
use freya_control::server::ControlPlane;
use freya_shared::ids::new_id;
use freya_shared::model::CallEvent;

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

struct Call<'a> {
    ws: &'a str,
    agent: &'a str,
    to: &'a str,
    edge: &'a str,
    start: i64,
    /// Answered after 1 s, ended after this many ms of talk; `None`: never answered.
    talk_ms: Option<i64>,
    reason: &'a str,
}

/// Records the call's events as an edge would; returns the call's id.
async fn feed(control: &ControlPlane, c: Call<'_>) -> String {
    let id = new_id();
    let ev = |kind: &str, at_ms: i64, payload: Value| CallEvent {
        id: new_id(),
        call_id: id.clone(),
        workspace_id: c.ws.to_owned(),
        kind: kind.into(),
        at_ms,
        payload,
        schema: 0,
    };
    let mut events = vec![ev(
        "call.started",
        c.start,
        json!({"direction": "inbound", "from": "+4790000000", "to": c.to, "agent_id": c.agent}),
    )];
    let end = match c.talk_ms {
        Some(talk) => {
            events.push(ev("call.answered", c.start + 1_000, json!({})));
            c.start + 1_000 + talk
        }
        None => c.start + 20_000,
    };
    events.push(ev("call.ended", end, json!({"reason": c.reason})));
    for e in &events {
        control
            .store
            .record_call_event(c.edge, e)
            .await
            .expect("event");
    }
    id
}

/// Records one more event of a call, as the edge `edge` would.
async fn event(control: &ControlPlane, ws: &str, call: &str, kind: &str, payload: Value) {
    let event = CallEvent {
        id: new_id(),
        call_id: call.to_owned(),
        workspace_id: ws.to_owned(),
        kind: kind.into(),
        at_ms: T0,
        payload,
        schema: 0,
    };
    control
        .store
        .record_call_event("edge-eu", &event)
        .await
        .expect("event");
}

async fn calls_are_bucketed_grouped_and_summed(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, _, viewer]) = workspace_with_keys(&control, "A").await;
    let (other, _) = workspace_with_keys(&control, "Other").await;
    support::register_edge(&control, "edge-eu", "eu-west").await;
    support::register_edge(&control, "edge-us", "us-east").await;
    let call = |ws, agent, edge, start, talk_ms, reason| Call {
        ws,
        agent,
        to: if agent == "agent-a" { "+111" } else { "+222" },
        edge,
        start,
        talk_ms,
        reason,
    };
    for c in [
        call(
            &ws,
            "agent-a",
            "edge-eu",
            T0 + 5 * MINUTE,
            Some(60_000),
            "hangup",
        ),
        call(
            &ws,
            "agent-a",
            "edge-eu",
            T0 + 50 * MINUTE,
            Some(30_000),
            "hangup",
        ),
        call(
            &ws,
            "agent-b",
            "edge-us",
            T0 + 10 * MINUTE,
            None,
            "no_answer",
        ),
        call(
            &ws,
            "agent-a",
            "edge-us",
            T0 + HOUR + MINUTE,
            Some(10_000),
            "transfer",
        ),
        // Outside the range, and another workspace: never counted.
        call(
            &ws,
            "agent-a",
            "edge-eu",
            T0 + 30 * HOUR,
            Some(1_000),
            "hangup",
        ),
        call(
            &other,
            "agent-a",
            "edge-eu",
            T0 + MINUTE,
            Some(1_000),
            "hangup",
        ),
    ] {
        feed(&control, c).await;
    }
    let get = |query: &'static str| {
        let api = api.clone();
        let viewer = viewer.clone();
        async move {
            let answer = api
                .call(
                    "GET",
                    &format!("/v1/analytics/calls?{query}"),
                    &viewer,
                    None,
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
            answer.body
        }
    };
    let range = "from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z";

    let daily = get(range).await;
    assert_eq!(daily["interval"], "day");
    let buckets = daily["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 1, "{daily}");
    let day = &buckets[0];
    assert_eq!(day["start"], "2025-01-01T00:00:00.000Z");
    assert_eq!(
        (day["calls"].as_i64(), day["answered"].as_i64()),
        (Some(4), Some(3))
    );
    assert_eq!(day["total_duration_ms"], 100_000);
    assert_eq!(day["average_duration_ms"], 33_333);
    assert_eq!(
        day["outcomes"],
        json!({"hangup": 2, "no_answer": 1, "transfer": 1})
    );
    assert!(day.get("group").is_none());

    let hourly = get(Box::leak(
        format!("{range}&interval=hour&group_by=agent").into_boxed_str(),
    ))
    .await;
    let rows: Vec<(String, String, i64)> = hourly["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            (
                b["start"].as_str().expect("start").to_owned(),
                b["group"].as_str().expect("group").to_owned(),
                b["calls"].as_i64().expect("calls"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("2025-01-01T00:00:00.000Z".into(), "agent-a".into(), 2),
            ("2025-01-01T00:00:00.000Z".into(), "agent-b".into(), 1),
            ("2025-01-01T01:00:00.000Z".into(), "agent-a".into(), 1),
        ]
    );

    let by_region = get(Box::leak(
        format!("{range}&group_by=region").into_boxed_str(),
    ))
    .await;
    let regions: Vec<(String, i64)> = by_region["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            (
                b["group"].as_str().expect("group").to_owned(),
                b["calls"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(regions, [("eu-west".into(), 2), ("us-east".into(), 2)]);

    let by_number = get(Box::leak(
        format!("{range}&group_by=number").into_boxed_str(),
    ))
    .await;
    let numbers: Vec<&str> = by_number["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter_map(|b| b["group"].as_str())
        .collect();
    assert_eq!(numbers, ["+111", "+222"]);

    for (query, field) in [
        ("interval=week", "interval"),
        ("group_by=colour", "group_by"),
        ("from=yesterday", "from"),
        (
            "from=2000-01-01T00:00:00Z&to=2025-01-01T00:00:00Z&interval=hour",
            "interval",
        ),
        ("colour=red", "colour"),
    ] {
        let path = format!("/v1/analytics/calls?{query}");
        api.refused_naming(400, "GET", &path, &viewer, None, field)
            .await;
    }
    // A range that ends before it starts (or as it starts, or a `from` after the default `to` of
    // now) is a 422 naming both ends.
    for query in [
        "from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z",
        "from=2025-01-01T00:00:00Z&to=2025-01-01T00:00:00Z",
        "from=2999-01-01T00:00:00Z",
    ] {
        let path = format!("/v1/analytics/calls?{query}");
        let answer = api.call("GET", &path, &viewer, None).await;
        let body = &answer.body;
        assert_eq!(answer.status, 422, "{query}: {body}");
        assert_eq!(answer.content_type(), "application/problem+json", "{query}");
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["from", "to"], "{query}: {body}");
    }
    control.stop().await;
    db.cleanup().await;
}

async fn usage_and_reply_latency_are_summed_and_ranked(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, _, viewer]) = workspace_with_keys(&control, "A").await;
    let (other, _) = workspace_with_keys(&control, "Other").await;
    support::register_edge(&control, "edge-eu", "eu-west").await;
    let call = |ws, agent, start, talk_ms| Call {
        ws,
        agent,
        to: "+111",
        edge: "edge-eu",
        start,
        talk_ms: Some(talk_ms),
        reason: "hangup",
    };
    // 61 s of talk bills two minutes, 59 s one.
    let a = feed(&control, call(&ws, "agent-a", T0 + MINUTE, 61_000)).await;
    let b = feed(&control, call(&ws, "agent-b", T0 + 2 * MINUTE, 59_000)).await;
    let foreign = feed(&control, call(&other, "agent-a", T0 + MINUTE, 1_000)).await;
    let reply = |ms: u64| json!({"endpointing_ms": 400, "stt_ms": 450, "first_rtp_ms": ms});
    for ms in [500, 505, 495, 500, 510, 490, 500, 500, 500, 900] {
        event(&control, &ws, &a, "call.turn_latency", reply(ms)).await;
    }
    // A reply cut off before the caller heard it: a turn, but no latency.
    event(
        &control,
        &ws,
        &a,
        "call.turn_latency",
        json!({"endpointing_ms": 400}),
    )
    .await;
    for _ in 0..3 {
        event(&control, &ws, &b, "call.turn_latency", reply(1_200)).await;
    }
    event(&control, &other, &foreign, "call.turn_latency", reply(5)).await;
    event(
        &control,
        &ws,
        &a,
        "call.transcript",
        json!({"role": "caller", "text": "hi", "start_ms": 1_000, "end_ms": 2_500}),
    )
    .await;
    event(
        &control,
        &ws,
        &a,
        "call.transcript",
        json!({"role": "agent", "text": "Hello there", "start_ms": 3_000, "end_ms": 4_000}),
    )
    .await;

    let range = "from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z";
    let answer = api
        .expect(
            200,
            "GET",
            &format!("/v1/analytics/calls?{range}"),
            &viewer,
            None,
        )
        .await;
    let day = &answer["buckets"][0];
    assert_eq!(
        day["usage"],
        // The edge did not count synthesis (no `agent_characters_synthesized` in `call.ended`):
        // the played characters stand in for it.
        json!({"billable_minutes": 3, "agent_turns": 14, "caller_speech_ms": 1_500,
               "agent_characters": 11, "agent_characters_played": 11,
               "agent_characters_synthesized": 11}),
        "{day}"
    );
    // 13 heard replies: ten of agent a (nine near 500 ms, one 900 ms) and three of agent b at
    // 1.2 s. Percentiles are within 2 % of the exact nearest-rank figures.
    let v2v = &day["voice_to_voice_ms"];
    assert_eq!(v2v["turns"], 13, "{day}");
    let near = |value: &Value, exact: f64| {
        let got = value.as_f64().expect("a number");
        assert!(
            (got - exact).abs() <= exact * 0.021,
            "{got} is not near {exact}"
        );
    };
    near(&v2v["p50"], 500.0);
    near(&v2v["p95"], 1_200.0);

    let by_agent = api
        .call(
            "GET",
            &format!("/v1/analytics/calls?{range}&group_by=agent"),
            &viewer,
            None,
        )
        .await;
    let buckets = by_agent.body["buckets"].as_array().expect("buckets");
    let agent_a = buckets
        .iter()
        .find(|b| b["group"] == "agent-a")
        .expect("agent a");
    assert_eq!(agent_a["voice_to_voice_ms"]["turns"], 10);
    near(&agent_a["voice_to_voice_ms"]["p50"], 500.0);
    near(&agent_a["voice_to_voice_ms"]["p95"], 900.0);
    assert_eq!(agent_a["usage"]["billable_minutes"], 2);
    let agent_b = buckets
        .iter()
        .find(|b| b["group"] == "agent-b")
        .expect("agent b");
    near(&agent_b["voice_to_voice_ms"]["p50"], 1_200.0);
    assert_eq!(agent_b["usage"]["agent_turns"], 3);
    control.stop().await;
    db.cleanup().await;
}

async fn the_call_log_shows_each_calls_median_reply_latency(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, _, viewer]) = workspace_with_keys(&control, "A").await;
    let (other, _) = workspace_with_keys(&control, "Other").await;
    support::register_edge(&control, "edge-eu", "eu-west").await;
    let call = |ws, start| Call {
        ws,
        agent: "agent-a",
        to: "+111",
        edge: "edge-eu",
        start,
        talk_ms: Some(30_000),
        reason: "hangup",
    };
    let odd = feed(&control, call(&ws, T0 + MINUTE)).await;
    let even = feed(&control, call(&ws, T0 + 2 * MINUTE)).await;
    let silent = feed(&control, call(&ws, T0 + 3 * MINUTE)).await;
    let reply = |ms: u64| json!({"endpointing_ms": 400, "first_rtp_ms": ms});
    for ms in [900, 480, 1_500] {
        event(&control, &ws, &odd, "call.turn_latency", reply(ms)).await;
    }
    // A reply cut off before its first packet has no latency and does not count.
    event(
        &control,
        &ws,
        &odd,
        "call.turn_latency",
        json!({"endpointing_ms": 400}),
    )
    .await;
    for ms in [700, 300] {
        event(&control, &ws, &even, "call.turn_latency", reply(ms)).await;
    }
    // Another workspace's event naming this workspace's call id is not read.
    event(&control, &other, &silent, "call.turn_latency", reply(5)).await;

    let page = api
        .expect(200, "GET", "/v1/calls?limit=2", &viewer, None)
        .await;
    let latency_of = |page: &Value, id: &str| {
        page["data"]
            .as_array()
            .and_then(|calls| calls.iter().find(|c| c["id"] == id))
            .map(|c| c["latency_ms"].clone())
    };
    // Newest first: the page holds the silent call and the even one.
    assert_eq!(latency_of(&page, &silent), Some(Value::Null), "{page}");
    assert_eq!(latency_of(&page, &even), Some(json!(300)), "{page}");
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let rest = api
        .expect(
            200,
            "GET",
            &format!("/v1/calls?cursor={cursor}"),
            &viewer,
            None,
        )
        .await;
    assert_eq!(latency_of(&rest, &odd), Some(json!(900)), "{rest}");
    let one = api
        .expect(200, "GET", &format!("/v1/calls/{odd}"), &viewer, None)
        .await;
    assert_eq!(one["latency_ms"], 900, "{one}");
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    calls_are_bucketed_grouped_and_summed,
    usage_and_reply_latency_are_summed_and_ranked,
    the_call_log_shows_each_calls_median_reply_latency,
);
