//! Retention and erasure of call data on SQLite and PostgreSQL: erasing one call leaves a
//! tombstone and an audit entry and spares the others; erasing by caller number erases every
//! call of that caller; the retention sweep (driven with a chosen "now", never by sleeping)
//! deletes only what is older than each window, and two sweeps at once neither fail nor
//! count twice; hostile input gets a problem naming the field.

use crate::support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::{on_both_engines, Backend, TestDb};
use freya_control::server::ControlPlane;
use freya_control::store::CallRecordingInfo;
use freya_shared::ids::{new_id, now_ms};
use freya_shared::model::{CallEvent, CallEventKind};

const DAY_MS: i64 = 86_400_000;

struct World {
    db: TestDb,
    control: ControlPlane,
    api: Api,
    ws: String,
    /// owner, admin, editor, viewer.
    keys: [String; 4],
    recordings: tempfile::TempDir,
}

async fn world(backend: Backend) -> World {
    let db = TestDb::new(backend).await;
    let recordings = tempfile::tempdir().expect("temp dir");
    let mut config = support::control_config(&db.url);
    config.recordings.dir = recordings.path().to_owned();
    let control = ControlPlane::start(&config).await.expect("control starts");
    let api = Api::of(&control);
    let (ws, keys) = workspace_with_keys(&control, "Retained").await;
    World {
        db,
        control,
        api,
        ws,
        keys,
        recordings,
    }
}

impl World {
    /// A call from `from` that started at `start_ms`, with a transcript line and a tool run,
    /// ended 60 s later unless `live`, and with a recording (file and row) when `recorded`.
    async fn call(&self, from: &str, start_ms: i64, live: bool, recorded: bool) -> String {
        let call = new_id();
        let mut events = vec![
            (
                CallEventKind::Started,
                0,
                json!({"direction": "inbound", "from": from, "to": "+4799999999"}),
            ),
            (
                CallEventKind::Transcript,
                1_000,
                json!({"speaker": "caller", "text": "my card is 4111 1111 1111 1111"}),
            ),
        ];
        if !live {
            events.push((
                CallEventKind::Ended,
                60_000,
                json!({"reason": "caller_hangup"}),
            ));
        }
        for (kind, offset, payload) in events {
            let mut e = CallEvent::raw(&call, &self.ws, kind, payload);
            e.at_ms = start_ms + offset;
            self.control
                .store
                .record_call_event("edge-a", &e)
                .await
                .expect("event");
        }
        let mut tool = CallEvent::raw(
            &call,
            &self.ws,
            "call.tool",
            json!({"name": "pay", "arguments": {"card": "4111"}}),
        );
        tool.at_ms = start_ms + 2_000;
        self.control
            .store
            .record_call_event("edge-a", &tool)
            .await
            .expect("tool event");
        if recorded {
            let recording_id = new_id();
            let path = self.recording_file(&recording_id);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(&path, b"RIFF fake wav").expect("file");
            self.control
                .store
                .attach_recording(
                    &call,
                    &self.ws,
                    &CallRecordingInfo {
                        recording_id,
                        format: "wav".into(),
                        bytes: 13,
                        duration_ms: 60_000,
                        sha256: "00".into(),
                    },
                )
                .await
                .expect("attach");
        }
        call
    }

    fn recording_file(&self, recording_id: &str) -> PathBuf {
        self.recordings
            .path()
            .join(&self.ws)
            .join(format!("{recording_id}.wav"))
    }

    fn files(&self) -> usize {
        let dir = self.recordings.path().join(&self.ws);
        std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0)
    }

    /// The admin's erasure of every call from `caller_number` (200): the report.
    async fn erase_caller(&self, caller_number: &str) -> Value {
        let body = json!({ "caller_number": caller_number });
        let path = "/v1/erasures";
        self.api
            .expect(200, "POST", path, &self.keys[1], Some(body))
            .await
    }

    async fn get_call(&self, id: &str) -> Value {
        self.api
            .expect(200, "GET", &format!("/v1/calls/{id}"), &self.keys[3], None)
            .await
    }

    async fn audit_actions(&self) -> Vec<String> {
        let page = self
            .api
            .expect(200, "GET", "/v1/audit-log?limit=100", &self.keys[1], None)
            .await;
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn finish(self) {
        self.control.stop().await;
        self.db.cleanup().await;
    }
}

fn field_of(problem: &Value) -> String {
    problem["errors"][0]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn erasing_a_call_keeps_a_tombstone_and_spares_the_others(backend: Backend) {
    let w = world(backend).await;
    let start = now_ms() - DAY_MS;
    let erased = w.call("+15551234567", start, false, true).await;
    let kept = w.call("+15557654321", start, false, true).await;
    let live = w.call("+15550000001", start, true, false).await;
    assert_eq!(w.files(), 2);
    let path = format!("/v1/calls/{erased}");

    // An editor may not; an admin may.
    w.api.expect(403, "DELETE", &path, &w.keys[2], None).await;
    w.api.expect(204, "DELETE", &path, &w.keys[1], None).await;

    let tombstone = w.get_call(&erased).await;
    assert!(tombstone["erased_at"].is_string(), "{tombstone}");
    assert_eq!(tombstone["transcript"], json!([]));
    assert_eq!(tombstone["events"], json!([]));
    assert!(tombstone["recording"].is_null());
    assert!(
        tombstone["from"].is_null(),
        "the caller's number is cleared"
    );
    assert_eq!(tombstone["status"], "ended");
    assert!(tombstone["ended_at"].is_string());
    assert_eq!(w.files(), 1, "the recording's file is deleted");
    let stored =
        w.db.read_text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM call_events WHERE call_id = $1",
            &erased,
        )
        .await;
    assert_eq!(stored, "0");

    let other = w.get_call(&kept).await;
    assert_eq!(other["transcript"].as_array().map(Vec::len), Some(1));
    assert!(other["recording"].is_object());
    assert!(other["erased_at"].is_null());
    assert!(w.audit_actions().await.contains(&"call.erased".to_owned()));

    // Again: nothing left to do. A live call, an unknown and a malformed id: problems.
    w.api.expect(204, "DELETE", &path, &w.keys[1], None).await;
    let answer = w
        .api
        .call("DELETE", &format!("/v1/calls/{live}"), &w.keys[1], None)
        .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert_eq!(answer.content_type(), "application/problem+json");
    assert_eq!(
        w.get_call(&live).await["transcript"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let answer = w
        .api
        .call(
            "DELETE",
            &format!("/v1/calls/{}", new_id()),
            &w.keys[1],
            None,
        )
        .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.content_type(), "application/problem+json");
    let answer = w
        .api
        .call("DELETE", "/v1/calls/%00%01bad%20id", &w.keys[1], None)
        .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.content_type(), "application/problem+json");
    w.finish().await;
}

async fn erasure_by_caller_number_erases_every_call_of_that_caller(backend: Backend) {
    let w = world(backend).await;
    let start = now_ms() - DAY_MS;
    let first = w.call("+15551234567", start, false, true).await;
    let second = w.call("+15551234567", start + 1_000, false, false).await;
    let other = w.call("+15559999999", start, false, true).await;

    let report = w.erase_caller("+1 (555) 123-4567").await;
    assert_eq!(report["calls_erased"], 2, "{report}");
    assert_eq!(report["recordings_deleted"], 1, "{report}");
    assert_eq!(report["caller_number"], "+15551234567");
    for id in [&first, &second] {
        let call = w.get_call(id).await;
        assert!(call["erased_at"].is_string());
        assert_eq!(call["transcript"], json!([]));
    }
    assert!(w.get_call(&other).await["erased_at"].is_null());
    assert_eq!(w.files(), 1);
    assert!(w
        .audit_actions()
        .await
        .contains(&"erasure.completed".to_owned()));

    // Twice: nothing more to erase.
    let again = w.erase_caller("+15551234567").await;
    assert_eq!(again["calls_erased"], 0);

    // Hostile input: not a number, the wrong type, an unknown field; and a viewer.
    for (body, field) in [
        (
            json!({"caller_number": "call me <maybe>!"}),
            "caller_number",
        ),
        (
            json!({"caller_number": "+1234567890123456789"}),
            "caller_number",
        ),
        (json!({"caller_number": 15551234567_i64}), "caller_number"),
        (json!({"caller_number": "+15551234567", "all": true}), "all"),
    ] {
        let answer = w
            .api
            .call("POST", "/v1/erasures", &w.keys[1], Some(body.clone()))
            .await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.content_type(), "application/problem+json");
        assert_eq!(field_of(&answer.body), field, "{}", answer.body);
    }
    w.api
        .expect(
            403,
            "POST",
            "/v1/erasures",
            &w.keys[3],
            Some(json!({"caller_number": "+15551234567"})),
        )
        .await;
    w.finish().await;
}

async fn retention_removes_only_what_is_older_than_its_window(backend: Backend) {
    let w = world(backend).await;
    let now = now_ms();
    let ancient = w
        .call("+15550000001", now - 400 * DAY_MS, false, true)
        .await;
    let old = w.call("+15550000002", now - 60 * DAY_MS, false, true).await;
    let week = w.call("+15550000003", now - 10 * DAY_MS, false, true).await;
    let recent = w.call("+15550000004", now - DAY_MS, false, true).await;
    assert_eq!(w.files(), 4);

    let patched = w.api.expect(200, "PATCH", &format!("/v1/workspaces/{}", w.ws), &w.keys[1],
        Some(json!({"retention": {"recordings_days": 7, "transcripts_days": 30, "calls_days": 365}}))).await;
    assert_eq!(
        patched["retention"],
        json!({"recordings_days": 7, "transcripts_days": 30, "calls_days": 365})
    );

    // Two sweeps at once, as two replicas would run them: neither fails, nothing counts twice.
    let dir: &Path = w.recordings.path();
    let (a, b) = tokio::join!(
        freya_control::retention::sweep_once(&w.control.store, dir, now, 500),
        freya_control::retention::sweep_once(&w.control.store, dir, now, 500),
    );
    let (a, b) = (a.expect("first sweep"), b.expect("second sweep"));
    assert_eq!(a.calls_deleted + b.calls_deleted, 1, "{a:?} {b:?}");
    // The ancient call's, the old one's and the 10-day one's.
    assert_eq!(
        a.recordings_deleted + b.recordings_deleted,
        3,
        "{a:?} {b:?}"
    );
    // Transcript line and tool run of the old call (the ancient one's went with the call,
    // unless a transcript sweep got there first).
    let events = a.transcript_events_deleted + b.transcript_events_deleted;
    assert!((2..=4).contains(&events), "{a:?} {b:?}");

    w.api
        .expect(
            404,
            "GET",
            &format!("/v1/calls/{ancient}"),
            &w.keys[3],
            None,
        )
        .await;
    let old_call = w.get_call(&old).await;
    assert_eq!(old_call["transcript"], json!([]));
    assert!(old_call["recording"].is_null());
    assert!(
        old_call["ended_at"].is_string(),
        "the record stays within calls_days"
    );
    let week_call = w.get_call(&week).await;
    assert_eq!(week_call["transcript"].as_array().map(Vec::len), Some(1));
    assert!(week_call["recording"].is_null());
    let recent_call = w.get_call(&recent).await;
    assert_eq!(recent_call["transcript"].as_array().map(Vec::len), Some(1));
    assert!(recent_call["recording"].is_object());
    assert_eq!(w.files(), 1, "only the recent call's file is left");
    assert!(w
        .audit_actions()
        .await
        .contains(&"retention.applied".to_owned()));

    // Nothing more is due.
    let third = freya_control::retention::sweep_once(&w.control.store, dir, now, 500)
        .await
        .expect("sweep");
    assert_eq!(third, Default::default());

    // null keeps forever again; windows not named stay.
    let patched = w
        .api
        .expect(
            200,
            "PATCH",
            &format!("/v1/workspaces/{}", w.ws),
            &w.keys[1],
            Some(json!({"retention": {"recordings_days": null}})),
        )
        .await;
    assert_eq!(
        patched["retention"],
        json!({"recordings_days": null, "transcripts_days": 30, "calls_days": 365})
    );
    w.finish().await;
}

async fn hostile_retention_days_are_refused_naming_the_field(backend: Backend) {
    let w = world(backend).await;
    let path = format!("/v1/workspaces/{}", w.ws);
    for (retention, field) in [
        (json!({"recordings_days": -1}), "retention.recordings_days"),
        (json!({"transcripts_days": 0}), "retention.transcripts_days"),
        (
            json!({"calls_days": 1_000_000_000_000_i64}),
            "retention.calls_days",
        ),
        (json!({"calls_days": 1.5}), "retention.calls_days"),
        (json!({"calls_days": "ten"}), "retention.calls_days"),
        (json!({"forever": 1}), "retention.forever"),
        (json!(7), "retention"),
    ] {
        let answer = w
            .api
            .call(
                "PATCH",
                &path,
                &w.keys[1],
                Some(json!({"retention": retention.clone()})),
            )
            .await;
        assert_eq!(answer.status, 422, "{retention}: {}", answer.body);
        assert_eq!(answer.content_type(), "application/problem+json");
        assert_eq!(field_of(&answer.body), field, "{}", answer.body);
    }
    let unchanged = w.api.expect(200, "GET", &path, &w.keys[3], None).await;
    assert_eq!(
        unchanged["retention"],
        json!({"recordings_days": null, "transcripts_days": null, "calls_days": null})
    );
    w.api
        .expect(
            403,
            "PATCH",
            &path,
            &w.keys[2],
            Some(json!({"retention": {"calls_days": 1}})),
        )
        .await;
    w.finish().await;
}

on_both_engines!(
    erasing_a_call_keeps_a_tombstone_and_spares_the_others,
    erasure_by_caller_number_erases_every_call_of_that_caller,
    retention_removes_only_what_is_older_than_its_window,
    hostile_retention_days_are_refused_naming_the_field,
);
