//! Draining with real processes: `freya dev --edges 3`, the third edge restarted from its
//! config file with `drain.deadline_seconds = 3`, carrying one call, gets SIGTERM. It says
//! `draining` in its gossip health, answers a new INVITE with 302 to a live peer, keeps the call
//! until the deadline ends it (the caller gets the BYE; the record ends as `edge_shutdown`, the
//! edge's own word, published before it leaves), leaves the cluster — its peers mark it down
//! from its goodbye, without suspecting it first as they would a crashed edge — and exits 0.

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;
use tokio::net::UdpSocket;

use crate::support::dev_cluster::{members_at, newest, signal, DevCluster};
use crate::support::eventually;
use crate::support::raw_sip::{recv_sip, Call};

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(30);

/// `id`'s (state, draining) at `http_url`, its newest generation.
async fn member(http_url: &str, id: &str) -> Option<(String, bool)> {
    newest(members_at(http_url).await?)
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| (m.state, m.draining))
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
/// (`running.children[0]`) with `drain.deadline_seconds = deadline_seconds`, alive at both
/// peers and answering SIP.
struct Cluster {
    dev: DevCluster,
    victim: String,
    peers: [String; 2],
    number: String,
}

async fn cluster_with_restarted_edge(deadline_seconds: u32) -> Cluster {
    let mut dev = DevCluster::start(3).await;
    let number = dev.number().to_owned();
    let peers = [dev.http(0), dev.http(1)];
    alive_everywhere(&peers, &dev.id(2)).await;

    // The third edge again, from its config file with a short drain deadline.
    let victim = dev.id(2);
    dev.kill_edge(2);
    let config = dev.edge(2).config.clone().expect("config path");
    let mut text = std::fs::read_to_string(&config).expect("edge config");
    text.push_str(&format!(
        "\n[drain]\ndeadline_seconds = {deadline_seconds}\n"
    ));
    std::fs::write(&config, text).expect("edge config");
    // Its SIP port may take a moment to be free after the kill.
    tokio::time::sleep(Duration::from_millis(300)).await;
    dev.restart_edge(2, None);
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
    let edge_sip = dev.sip(2);
    // Its SIP listener answers before the call is dialled.
    eventually(LIMIT, "the restarted edge to answer OPTIONS", || async {
        let probe = UdpSocket::bind("127.0.0.1:0").await.ok()?;
        let me = probe.local_addr().ok()?;
        let options = format!(
            "OPTIONS sip:{number}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKopt{port}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p\r\nTo: <sip:{number}@{to}>\r\n\
             Call-ID: opt-{port}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            to = edge_sip,
            port = me.port()
        );
        probe.send_to(options.as_bytes(), edge_sip).await.ok()?;
        let mut buf = [0u8; 4096];
        let got = tokio::time::timeout(Duration::from_millis(500), probe.recv_from(&mut buf));
        got.await.ok()?.ok().map(|_| ())
    })
    .await;
    Cluster {
        dev,
        victim,
        peers,
        number,
    }
}

impl Cluster {
    fn sip_of(&self, i: usize) -> SocketAddr {
        self.dev.sip(i)
    }

    /// The restarted edge's process.
    fn edge(&mut self) -> &mut Child {
        &mut self.dev.running.children[0]
    }

    /// Waits until both peers see the edge alive and draining.
    async fn until_draining_everywhere(&self) {
        for url in &self.peers {
            eventually(LIMIT, "the peers to see it draining", || async {
                (member(url, &self.victim).await? == ("alive".to_owned(), true)).then_some(())
            })
            .await;
        }
    }

    /// A new INVITE to the draining edge is answered 302 to one of its peers.
    async fn new_invite_is_redirected(&self, call_id: &str) {
        let caller = Call::new(self.sip_of(2), &self.number, call_id).await;
        let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                     m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
        caller.send_invite(offer).await;
        let moved = recv_sip(&caller.sip, "SIP/2.0 302", LIMIT).await;
        assert!(
            moved.contains(&format!("@{};freya-redirected", self.sip_of(0)))
                || moved.contains(&format!("@{};freya-redirected", self.sip_of(1))),
            "{moved}"
        );
    }

    /// Waits until both peers mark the edge down, never having seen it suspect on the way (as
    /// a crash would be), then until its process exits 0.
    async fn leaves_unsuspected_and_exits_0(&mut self) {
        let seen = std::sync::Mutex::new(Vec::new());
        eventually(LIMIT, "the peers to mark it down", || async {
            let mut all_down = true;
            for url in &self.peers {
                let (state, _) = member(url, &self.victim).await?;
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
            let status = self.edge().try_wait().ok().flatten();
            async move { status }
        })
        .await;
        assert!(status.success(), "{status:?}");
    }

    /// The record of the edge's call, once it has ended.
    async fn ended_record(&self) -> Value {
        eventually(LIMIT, "the call's record to end", || async {
            let calls = self.dev.get("/v1/calls").await?;
            calls["data"]
                .as_array()?
                .iter()
                .find(|c| c["edge_id"] == self.victim.as_str() && c["ended_at"].is_string())
                .cloned()
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_redirects_ends_calls_at_the_deadline_leaves_and_exits_0() {
    let mut c = cluster_with_restarted_edge(3).await;

    // One call in progress on it.
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let call = Call::dial(c.sip_of(2), &rtp, &c.number, "drain-call-1").await;

    // SIGTERM: the edge drains.
    signal(c.edge().id(), libc::SIGTERM);
    c.until_draining_everywhere().await;

    // A new INVITE to it goes to a live peer; the call in progress is still up.
    c.new_invite_is_redirected("drain-call-2").await;
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
        .send_to(ok.as_bytes(), c.sip_of(2))
        .await
        .expect("200 to the BYE");

    // Down at both peers from its goodbye, and the process exits 0.
    c.leaves_unsuspected_and_exits_0().await;

    // The call's record ends as the edge ended it, not as `edge_lost` from its peers' report:
    // the drain published the end before the edge left.
    let record = c.ended_record().await;
    assert_eq!(record["end_reason"], "edge_shutdown", "{record}");
}

/// `POST /v1/edges/{id}/drain` does what SIGTERM does: the edge, carrying a call, redirects a
/// new INVITE to a peer, keeps the call until its caller hangs up (well before the deadline),
/// then leaves the cluster without being suspected and exits 0; the call ends as the caller
/// ended it (never `edge_lost`), and the drain is in the audit log.
#[tokio::test(flavor = "multi_thread")]
async fn rest_drain_redirects_lets_the_call_finish_leaves_and_exits_0() {
    let mut c = cluster_with_restarted_edge(60).await;
    let (api, key) = (c.dev.api(), c.dev.api_key().to_owned());

    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let call = Call::dial(c.sip_of(2), &rtp, &c.number, "rest-drain-call-1").await;

    // Refused below admin: the dev key is the owner's, so an editor key is made for the try.
    let editor = api
        .create(
            &format!("/v1/workspaces/{}/api-keys", c.dev.info.workspace_id),
            &key,
            serde_json::json!({"name": "editor", "role": "editor"}),
        )
        .await;
    let editor_key = editor["key"].as_str().expect("key").to_owned();
    let drain = format!("/v1/edges/{}/drain", c.victim);
    api.expect(403, "POST", &drain, &editor_key, None).await;

    let answer = api.expect(202, "POST", &drain, &key, None).await;
    assert_eq!(answer["status"], "draining", "{answer}");

    c.until_draining_everywhere().await;
    c.new_invite_is_redirected("rest-drain-call-2").await;

    // The call in progress is still up while draining, and the process still runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        matches!(c.edge().try_wait(), Ok(None)),
        "the edge left with a call in progress"
    );
    // Its caller hangs up: the edge's last call is over, so it leaves.
    call.hang_up(2).await;
    c.leaves_unsuspected_and_exits_0().await;

    let record = c.ended_record().await;
    assert_eq!(record["end_reason"], "caller_hangup", "{record}");
    // Still not `edge_lost` a moment later: the peers' `down` about a leaving edge ends nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = api.expect(200, "GET", "/v1/calls", &key, None).await;
    let lost: Vec<_> = calls["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|c| c["end_reason"] == "edge_lost")
        .collect();
    assert!(lost.is_empty(), "{lost:?}");

    let audit = api
        .expect(200, "GET", "/v1/audit-log?limit=50", &key, None)
        .await;
    let entry = audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|e| e["action"] == "drain" && e["resource_id"] == c.victim.as_str())
        .cloned();
    assert!(entry.is_some(), "{audit}");
}
