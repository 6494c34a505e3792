//! The cluster with real processes: `freya dev --edges 3` runs a control plane, an edge in its
//! own process and two `freya edge` processes, gossiping over UDP on 127.0.0.1. The fault: one
//! edge carrying a call is killed with SIGKILL. Its peers mark it `down` in `GET /cluster`, the
//! control plane shows it offline with `cluster_state: down` (only peers' reports set that), the
//! call ends as `edge_lost` with one `call.ended` webhook, and the edge restarted from its
//! config file rejoins as alive with a newer generation.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::UdpSocket;

use support::eventually;
use support::raw_sip::Call;

/// Hang guard for each wait: far above the 3 s detection budget.
const LIMIT: Duration = Duration::from_secs(30);

/// Processes this test started (`freya dev`, and the edges it lists), stopped on drop: SIGTERM
/// to `freya dev` (which stops its edges), then SIGKILL to whatever of them is left.
struct Running {
    dev: Child,
    others: Arc<Mutex<Vec<u32>>>,
}

fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on a process this test started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        signal(self.dev.id(), libc::SIGTERM);
        for _ in 0..100 {
            if matches!(self.dev.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.dev.kill();
        let _ = self.dev.wait();
        for pid in self.others.lock().map(|p| p.clone()).unwrap_or_default() {
            signal(pid, libc::SIGKILL);
        }
    }
}

fn free_sip_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

async fn get(url: &str, key: &str) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// Each member's state in the edge at `http_url`'s `GET /cluster`, by id (newest generation).
async fn cluster_states(http_url: &str) -> Option<Vec<(String, String, u64)>> {
    let report = get(&format!("{http_url}/cluster"), "").await?;
    let members = report["members"].as_array()?;
    Some(
        members
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_owned(),
                    m["state"].as_str().unwrap_or_default().to_owned(),
                    m["generation"].as_u64().unwrap_or_default(),
                )
            })
            .collect(),
    )
}

fn state_of(states: &[(String, String, u64)], id: &str) -> Option<(String, u64)> {
    states
        .iter()
        .filter(|(i, ..)| i == id)
        .max_by_key(|(.., g)| *g)
        .map(|(_, s, g)| (s.clone(), *g))
}

type Seen = Arc<Mutex<Vec<Value>>>;

async fn webhook_receiver() -> (Seen, String) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(|State(seen): State<Seen>, body: Bytes| async move {
                if let Ok(value) = serde_json::from_slice(&body) {
                    seen.lock().expect("lock").push(value);
                }
                StatusCode::OK
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, url)
}

fn start_dev(data_dir: &Path, sip: &str) -> Running {
    let dev = Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["dev", "--edges", "3", "--data-dir"])
        .arg(data_dir)
        .args(["--http", "127.0.0.1:0", "--sip", sip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start freya dev");
    Running {
        dev,
        others: Arc::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_edge_is_down_everywhere_its_call_ends_as_edge_lost_and_it_rejoins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sip = format!("127.0.0.1:{}", free_sip_port());
    let running = start_dev(dir.path(), &sip);
    let info_path = dir.path().join("dev.json");
    let info: Value = eventually(
        Duration::from_secs(120),
        "dev.json with three edges",
        || {
            let path = info_path.clone();
            async move {
                let info: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                (info["edges"].as_array()?.len() == 3).then_some(info)
            }
        },
    )
    .await;
    let edges = info["edges"].as_array().expect("edges").clone();
    running.others.lock().expect("lock").extend(
        edges[1..]
            .iter()
            .filter_map(|e| e["pid"].as_u64())
            .map(|p| p as u32),
    );
    let api = info["api_url"].as_str().expect("api_url").to_owned();
    let key = info["api_key"].as_str().expect("api_key").to_owned();
    let id = |i: usize| edges[i]["id"].as_str().expect("id").to_owned();
    let http = |i: usize| edges[i]["http_url"].as_str().expect("http_url").to_owned();
    let ids: Vec<String> = (0..3).map(id).collect();

    // Every edge sees all three alive.
    for i in 0..3 {
        let (url, ids) = (http(i), ids.clone());
        eventually(LIMIT, "every edge to see all three alive", || {
            let (url, ids) = (url.clone(), ids.clone());
            async move {
                let states = cluster_states(&url).await?;
                ids.iter()
                    .all(|id| state_of(&states, id).is_some_and(|(s, _)| s == "alive"))
                    .then_some(())
            }
        })
        .await;
    }

    let (seen, hook_url) = webhook_receiver().await;
    let hook = reqwest::Client::new()
        .post(format!("{api}/v1/webhooks"))
        .bearer_auth(&key)
        .json(
            &json!({"url": hook_url, "events": ["call.ended"], "secret": "whsec-0123456789abcdef"}),
        )
        .send()
        .await
        .expect("webhook request");
    assert_eq!(hook.status(), StatusCode::CREATED);

    // A call on the third edge, answered and in progress.
    let victim = id(2);
    let victim_sip = edges[2]["sip_addr"]
        .as_str()
        .expect("sip_addr")
        .parse()
        .expect("addr");
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let number = info["phone_number"].as_str().expect("number").to_owned();
    let _call = Call::dial(victim_sip, &rtp, &number, "cluster-call-1").await;
    let call_id = eventually(LIMIT, "the call in progress on the third edge", || {
        let (api, key, victim) = (api.clone(), key.clone(), victim.clone());
        async move {
            let calls = get(&format!("{api}/v1/calls"), &key).await?;
            calls["data"].as_array()?.iter().find_map(|c| {
                (c["edge_id"] == victim.as_str() && c["status"] == "in_progress")
                    .then(|| c["id"].as_str().map(str::to_owned))
                    .flatten()
            })
        }
    })
    .await;

    // SIGKILL: no goodbye, no call.ended from the edge itself.
    let pid = edges[2]["pid"].as_u64().expect("pid") as u32;
    signal(pid, libc::SIGKILL);

    for i in 0..2 {
        let (url, victim) = (http(i), victim.clone());
        eventually(LIMIT, "the survivors to mark the killed edge down", || {
            let (url, victim) = (url.clone(), victim.clone());
            async move {
                let states = cluster_states(&url).await?;
                (state_of(&states, &victim)?.0 == "down").then_some(())
            }
        })
        .await;
    }
    eventually(
        LIMIT,
        "the control plane to show it offline, as its peers said",
        || {
            let (api, key, victim) = (api.clone(), key.clone(), victim.clone());
            async move {
                let edges = get(&format!("{api}/v1/edges"), &key).await?;
                let edge = edges
                    .as_array()?
                    .iter()
                    .find(|e| e["id"] == victim.as_str())?
                    .clone();
                (edge["status"] == "offline" && edge["cluster_state"] == "down").then_some(())
            }
        },
    )
    .await;
    let record = eventually(LIMIT, "the call to end as edge_lost", || {
        let (api, key, call_id) = (api.clone(), key.clone(), call_id.clone());
        async move {
            let record = get(&format!("{api}/v1/calls/{call_id}"), &key).await?;
            record["ended_at"].is_string().then_some(record)
        }
    })
    .await;
    assert_eq!(record["end_reason"], "edge_lost", "{record}");
    let ended_hooks = |seen: &Seen| {
        seen.lock()
            .expect("lock")
            .iter()
            .filter(|b| b.to_string().contains(&call_id) && b.to_string().contains("edge_lost"))
            .count()
    };
    eventually(LIMIT, "the call.ended webhook", || {
        let seen = seen.clone();
        async move { (ended_hooks(&seen) > 0).then_some(()) }
    })
    .await;

    // Restarted from its config file: back as alive, a newer generation, online again.
    let config = edges[2]["config"].as_str().expect("config path").to_owned();
    let restarted = Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["edge", "--config", &config])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("restart the edge");
    running.others.lock().expect("lock").push(restarted.id());
    let _restarted = Running {
        dev: restarted,
        others: Arc::default(),
    };
    for i in 0..2 {
        let (url, victim) = (http(i), victim.clone());
        eventually(LIMIT, "the restarted edge to be alive at its peers", || {
            let (url, victim) = (url.clone(), victim.clone());
            async move {
                let states = cluster_states(&url).await?;
                (state_of(&states, &victim)?.0 == "alive").then_some(())
            }
        })
        .await;
    }
    eventually(LIMIT, "the control plane to show it online again", || {
        let (api, key, victim) = (api.clone(), key.clone(), victim.clone());
        async move {
            let edges = get(&format!("{api}/v1/edges"), &key).await?;
            let edge = edges
                .as_array()?
                .iter()
                .find(|e| e["id"] == victim.as_str())?
                .clone();
            (edge["status"] == "online" && edge["cluster_state"] == "alive").then_some(())
        }
    })
    .await;
    // Two peers reported the death; the call ended once.
    assert_eq!(ended_hooks(&seen), 1, "one call.ended per call");
}
