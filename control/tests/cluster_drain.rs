//! Draining with real processes: `freya dev --edges 3`, the third edge restarted from its
//! config file with `drain.deadline_seconds = 3`, carrying one call, gets SIGTERM. It says
//! `draining` in its gossip health, answers a new INVITE with 302 to a live peer, keeps the call
//! until the deadline ends it (the caller gets the BYE; the record ends as `edge_shutdown`, the
//! edge's own word, published before it leaves), leaves the cluster — its peers mark it down
//! from its goodbye, without suspecting it first as they would a crashed edge — and exits 0.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::net::UdpSocket;

use support::eventually;
use support::raw_sip::{recv_sip, Call};

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(30);

/// Processes this test started, stopped on drop (SIGTERM, then SIGKILL).
struct Running(Vec<Child>);

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
        for child in &mut self.0 {
            signal(child.id(), libc::SIGTERM);
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
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

/// Each member of `GET /cluster` at `http_url`, newest generation per id: (id, state, draining).
async fn members(http_url: &str) -> Option<Vec<(String, String, bool, u64)>> {
    let report: Value = reqwest::Client::new()
        .get(format!("{http_url}/cluster"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        report["members"]
            .as_array()?
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_owned(),
                    m["state"].as_str().unwrap_or_default().to_owned(),
                    m["draining"].as_bool().unwrap_or(false),
                    m["generation"].as_u64().unwrap_or(0),
                )
            })
            .collect(),
    )
}

/// `id`'s (state, draining) at `http_url`, its newest generation.
async fn member(http_url: &str, id: &str) -> Option<(String, bool)> {
    members(http_url)
        .await?
        .into_iter()
        .filter(|m| m.0 == id)
        .max_by_key(|m| m.3)
        .map(|m| (m.1, m.2))
}

async fn alive_everywhere(urls: &[String], id: &str) {
    for url in urls {
        eventually(LIMIT, "the edge alive at its peer", || async {
            (member(url, id).await?.0 == "alive").then_some(())
        })
        .await;
    }
}

/// `freya dev --edges 3` with its third edge restarted as a `freya edge` process of this test
/// (`running.0[1]`) with `drain.deadline_seconds = deadline_seconds`, alive at both peers and
/// answering SIP.
struct Cluster {
    running: Running,
    info: Value,
    edges: Vec<Value>,
    victim: String,
    peers: [String; 2],
    number: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn sip_of(&self, i: usize) -> SocketAddr {
        self.edges[i]["sip_addr"]
            .as_str()
            .expect("sip_addr")
            .parse()
            .expect("addr")
    }

    fn api(&self) -> (String, String) {
        (
            self.info["api_url"].as_str().expect("api_url").to_owned(),
            self.info["api_key"].as_str().expect("api_key").to_owned(),
        )
    }
}

async fn cluster_with_restarted_edge(deadline_seconds: u32) -> Cluster {
    let dir = tempfile::tempdir().expect("temp dir");
    let sip = format!("127.0.0.1:{}", free_sip_port());
    let dev = Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["dev", "--edges", "3", "--data-dir"])
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0", "--sip", &sip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start freya dev");
    let mut running = Running(vec![dev]);
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
    let number = info["phone_number"].as_str().expect("number").to_owned();
    let id = |i: usize| edges[i]["id"].as_str().expect("id").to_owned();
    let http = |i: usize| edges[i]["http_url"].as_str().expect("http_url").to_owned();
    let sip_of = |i: usize| -> SocketAddr {
        edges[i]["sip_addr"]
            .as_str()
            .expect("sip_addr")
            .parse()
            .expect("addr")
    };
    let peers = [http(0), http(1)];
    alive_everywhere(&peers, &id(2)).await;

    // The third edge again, from its config file with a short drain deadline.
    let victim = id(2);
    signal(edges[2]["pid"].as_u64().expect("pid") as u32, libc::SIGKILL);
    let config = edges[2]["config"].as_str().expect("config path").to_owned();
    let mut text = std::fs::read_to_string(&config).expect("edge config");
    text.push_str(&format!(
        "\n[drain]\ndeadline_seconds = {deadline_seconds}\n"
    ));
    std::fs::write(&config, text).expect("edge config");
    // Its SIP port may take a moment to be free after the kill.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let edge = Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["edge", "--config", &config])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("restart the edge");
    running.0.push(edge);
    eventually(
        LIMIT,
        "the restarted edge alive, not draining, at its peers",
        || async {
            for url in &peers {
                if member(url, &victim).await? != ("alive".to_owned(), false) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    // Its SIP listener answers before the call is dialled.
    eventually(LIMIT, "the restarted edge to answer OPTIONS", || async {
        let probe = UdpSocket::bind("127.0.0.1:0").await.ok()?;
        let me = probe.local_addr().ok()?;
        let options = format!(
            "OPTIONS sip:{number}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt{port}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p\r\nTo: <sip:{number}@{to}>\r\n\
             Call-ID: opt-{port}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            to = sip_of(2),
            port = me.port()
        );
        probe.send_to(options.as_bytes(), sip_of(2)).await.ok()?;
        let mut buf = [0u8; 4096];
        let got = tokio::time::timeout(Duration::from_millis(500), probe.recv_from(&mut buf));
        got.await.ok()?.ok().map(|_| ())
    })
    .await;
    Cluster {
        running,
        info,
        edges,
        victim,
        peers,
        number,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_redirects_ends_calls_at_the_deadline_leaves_and_exits_0() {
    let mut c = cluster_with_restarted_edge(3).await;
    let (victim, peers, number, info) = (
        c.victim.clone(),
        c.peers.clone(),
        c.number.clone(),
        c.info.clone(),
    );
    let sip = [c.sip_of(0), c.sip_of(1), c.sip_of(2)];
    let sip_of = |i: usize| sip[i];
    let running = &mut c.running;

    // One call in progress on it.
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let call = Call::dial(sip_of(2), &rtp, &number, "drain-call-1").await;

    // SIGTERM: the edge drains.
    let pid = running.0[1].id();
    signal(pid, libc::SIGTERM);
    for url in &peers {
        eventually(LIMIT, "the peers to see it draining", || async {
            (member(url, &victim).await? == ("alive".to_owned(), true)).then_some(())
        })
        .await;
    }

    // A new INVITE to it goes to a live peer; the call in progress is still up.
    let caller = Call::new(sip_of(2), &number, "drain-call-2").await;
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    caller.send_invite(offer).await;
    let moved = recv_sip(&caller.sip, "SIP/2.0 302", LIMIT).await;
    assert!(
        moved.contains(&format!("@{};freya-redirected", sip_of(0)))
            || moved.contains(&format!("@{};freya-redirected", sip_of(1))),
        "{moved}"
    );
    let mut buf = vec![0u8; 65_536];
    let early = tokio::time::timeout(Duration::from_millis(200), call.sip.recv_from(&mut buf));
    if let Ok(Ok((n, _))) = early.await {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            !text.starts_with("BYE"),
            "the call was ended at once: {text}"
        );
    }

    // The deadline ends the call: the caller gets the edge's BYE.
    let bye = recv_sip(&call.sip, "BYE", LIMIT).await;
    assert!(bye.contains("drain-call-1"), "{bye}");
    // The caller answers it, as a phone does: the edge then knows the call is over.
    let echoed: String = bye
        .lines()
        .filter(|l| {
            let name = l
                .split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            ["via", "from", "to", "call-id", "cseq"].contains(&name.as_str())
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    let ok = format!("SIP/2.0 200 OK\r\n{echoed}Content-Length: 0\r\n\r\n");
    call.sip
        .send_to(ok.as_bytes(), sip_of(2))
        .await
        .expect("200 to the BYE");

    // Down at both peers from its goodbye: never suspected on the way, as a crash would be.
    let seen = std::sync::Mutex::new(Vec::new());
    eventually(LIMIT, "the peers to mark it down", || async {
        let mut all_down = true;
        for url in &peers {
            let (state, _) = member(url, &victim).await?;
            all_down &= state == "down";
            seen.lock().expect("lock").push(state);
        }
        all_down.then_some(())
    })
    .await;
    let seen = seen.into_inner().expect("lock");
    assert!(
        !seen.iter().any(|s| s == "suspect"),
        "a leaving edge is not suspected first: {seen:?}"
    );

    // And the process exits 0.
    let status = eventually(LIMIT, "the drained edge to exit", || {
        let status = running.0[1].try_wait().ok().flatten();
        async move { status }
    })
    .await;
    assert!(status.success(), "{status:?}");

    // The call's record ends as the edge ended it, not as `edge_lost` from its peers' report:
    // the drain published the end before the edge left.
    let api = info["api_url"].as_str().expect("api_url").to_owned();
    let key = info["api_key"].as_str().expect("api_key").to_owned();
    let record = eventually(LIMIT, "the call's record to end", || {
        let (api, key, victim) = (api.clone(), key.clone(), victim.clone());
        async move {
            let calls: Value = reqwest::Client::new()
                .get(format!("{api}/v1/calls"))
                .bearer_auth(&key)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            calls["data"]
                .as_array()?
                .iter()
                .find(|c| c["edge_id"] == victim.as_str() && c["ended_at"].is_string())
                .cloned()
        }
    })
    .await;
    assert_eq!(record["end_reason"], "edge_shutdown", "{record}");
}

/// `POST /v1/edges/{id}/drain` does what SIGTERM does: the edge, carrying a call, redirects a
/// new INVITE to a peer, keeps the call until its caller hangs up (well before the deadline),
/// then leaves the cluster without being suspected and exits 0; the call ends as the caller
/// ended it (never `edge_lost`), and the drain is in the audit log.
#[tokio::test(flavor = "multi_thread")]
async fn rest_drain_redirects_lets_the_call_finish_leaves_and_exits_0() {
    let mut c = cluster_with_restarted_edge(60).await;
    let (api, key) = c.api();
    let http = reqwest::Client::new();

    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let call = Call::dial(c.sip_of(2), &rtp, &c.number, "rest-drain-call-1").await;

    // Refused below admin: the dev key is the owner's, so an editor key is made for the try.
    let editor: Value = http
        .post(format!(
            "{api}/v1/workspaces/{}/api-keys",
            c.info["workspace_id"].as_str().expect("workspace_id")
        ))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "editor", "role": "editor"}))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("key json");
    let editor_key = editor["key"].as_str().expect("key").to_owned();
    let refused = http
        .post(format!("{api}/v1/edges/{}/drain", c.victim))
        .bearer_auth(&editor_key)
        .send()
        .await
        .expect("drain as editor");
    assert_eq!(refused.status(), 403);

    let answer = http
        .post(format!("{api}/v1/edges/{}/drain", c.victim))
        .bearer_auth(&key)
        .send()
        .await
        .expect("drain");
    assert_eq!(answer.status(), 202);
    let answer: Value = answer.json().await.expect("json");
    assert_eq!(answer["status"], "draining", "{answer}");

    for url in &c.peers {
        eventually(LIMIT, "the peers to see it draining", || async {
            (member(url, &c.victim).await? == ("alive".to_owned(), true)).then_some(())
        })
        .await;
    }
    let caller = Call::new(c.sip_of(2), &c.number, "rest-drain-call-2").await;
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                 m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    caller.send_invite(offer).await;
    let moved = recv_sip(&caller.sip, "SIP/2.0 302", LIMIT).await;
    assert!(
        moved.contains(&format!("@{};freya-redirected", c.sip_of(0)))
            || moved.contains(&format!("@{};freya-redirected", c.sip_of(1))),
        "{moved}"
    );

    // The call in progress is still up while draining, and the process still runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        matches!(c.running.0[1].try_wait(), Ok(None)),
        "the edge left with a call in progress"
    );
    // Its caller hangs up: the edge's last call is over, so it leaves.
    call.hang_up(2).await;

    let seen = std::sync::Mutex::new(Vec::new());
    eventually(LIMIT, "the peers to mark it down", || async {
        let mut all_down = true;
        for url in &c.peers {
            let (state, _) = member(url, &c.victim).await?;
            all_down &= state == "down";
            seen.lock().expect("lock").push(state);
        }
        all_down.then_some(())
    })
    .await;
    let seen = seen.into_inner().expect("lock");
    assert!(
        !seen.iter().any(|s| s == "suspect"),
        "a leaving edge is not suspected first: {seen:?}"
    );
    let status = eventually(LIMIT, "the drained edge to exit", || {
        let status = c.running.0[1].try_wait().ok().flatten();
        async move { status }
    })
    .await;
    assert!(status.success(), "{status:?}");

    let record = eventually(LIMIT, "the call's record to end", || {
        let (api, key, victim) = (api.clone(), key.clone(), c.victim.clone());
        async move {
            let calls: Value = reqwest::Client::new()
                .get(format!("{api}/v1/calls"))
                .bearer_auth(&key)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            calls["data"]
                .as_array()?
                .iter()
                .find(|c| c["edge_id"] == victim.as_str() && c["ended_at"].is_string())
                .cloned()
        }
    })
    .await;
    assert_eq!(record["end_reason"], "caller_hangup", "{record}");
    // Still not `edge_lost` a moment later: the peers' `down` about a leaving edge ends nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls: Value = http
        .get(format!("{api}/v1/calls"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("calls")
        .json()
        .await
        .expect("json");
    let lost: Vec<_> = calls["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|c| c["end_reason"] == "edge_lost")
        .collect();
    assert!(lost.is_empty(), "{lost:?}");

    let audit: Value = http
        .get(format!("{api}/v1/audit-log?limit=50"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    let entry = audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|e| e["action"] == "drain" && e["resource_id"] == c.victim.as_str())
        .cloned();
    assert!(entry.is_some(), "{audit}");
}
