//! The cluster routes calls, with real processes: `freya dev --edges 3 --capacity 1` runs three
//! edges gossiping over UDP on 127.0.0.1, each with room for one call. One edge is made full by
//! a call; an INVITE to it is answered `302 Moved Temporarily` with a live peer's SIP address
//! as Contact, and that INVITE sent there is answered. The attacks: an INVITE forged as already
//! redirected (a redirect loop) is not redirected again but refused 503 with `Retry-After`; and
//! with every peer full, a full edge answers 503 with `Retry-After` instead of a redirect.
//! A redirect records no failed call and counts in `freya_edge_sip_invites_redirected_total`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::net::UdpSocket;

use crate::support::dev_cluster::{get_text, DevCluster};
use crate::support::eventually;
use crate::support::raw_sip::{recv_sip, to_tag, Call};

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(30);

/// An INVITE from a socket of its own on `source_ip` (each edge limits INVITEs per source
/// address) to `target` with Request-URI `uri`: the first final response, ACKed if not 2xx.
struct Invite {
    sip: UdpSocket,
    rtp: UdpSocket,
    call_id: String,
}

impl Invite {
    async fn from(source_ip: &str, call_id: &str) -> Self {
        Invite {
            sip: UdpSocket::bind((source_ip, 0)).await.expect("sip"),
            rtp: UdpSocket::bind((source_ip, 0)).await.expect("rtp"),
            call_id: call_id.to_owned(),
        }
    }

    /// `method` with Request-URI `uri`; `branch` tells the INVITE's transaction (and the ACK
    /// of a refusal, which belongs to it) from the ACK of a 2xx, a transaction of its own.
    fn text(
        &self,
        method: &str,
        uri: &str,
        to_tag: Option<&str>,
        branch: &str,
        body: &str,
    ) -> String {
        let me = self.sip.local_addr().expect("addr");
        let call_id = &self.call_id;
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550009@{me}>;tag=router\r\nTo: <{uri}>{to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:caller@{me}>\r\n\
             {content_type}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    async fn send(&self, target: SocketAddr, uri: &str) -> String {
        let rtp = self.rtp.local_addr().expect("addr");
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = rtp.ip(),
            port = rtp.port()
        );
        let invite = self.text("INVITE", uri, None, "", &sdp);
        self.sip
            .send_to(invite.as_bytes(), target)
            .await
            .expect("INVITE");
        let response = recv_final(&self.sip).await;
        let branch = if response.starts_with("SIP/2.0 2") {
            "ack"
        } else {
            ""
        };
        let ack = self.text("ACK", uri, Some(&to_tag(&response)), branch, "");
        self.sip.send_to(ack.as_bytes(), target).await.expect("ACK");
        response
    }
}

/// The first final (non-1xx) response on `socket`.
async fn recv_final(socket: &UdpSocket) -> String {
    tokio::time::timeout(LIMIT, async {
        loop {
            let text = recv_sip(socket, "SIP/2.0 ", LIMIT).await;
            if !text.starts_with("SIP/2.0 1") {
                return text;
            }
        }
    })
    .await
    .expect("a final response")
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Waits until edge `i` sees each of `expected` alive with its number of active calls (and
/// room for one call).
async fn wait_for_loads(cluster: &DevCluster, i: usize, expected: &[(String, u64)], what: &str) {
    cluster
        .until_view(i, what, |view| {
            expected.iter().all(|(id, active)| {
                view.iter().any(|m| {
                    &m.id == id
                        && m.state == "alive"
                        && m.active_calls == Some(*active)
                        && m.capacity == Some(1)
                })
            })
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_edge_redirects_to_a_live_peer_never_twice_and_refuses_when_all_are_full() {
    let cluster = DevCluster::builder(3).capacity(1).start().await;
    let number = cluster.number();
    let id = |i: usize| cluster.id(i);
    let sip_of = |i: usize| cluster.sip(i);
    let idle: Vec<(String, u64)> = (0..3).map(|i| (id(i), 0)).collect();
    for i in 0..3 {
        wait_for_loads(
            &cluster,
            i,
            &idle,
            "every edge to see all three alive and idle",
        )
        .await;
    }

    // The third edge takes one call and is full.
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let _first = Call::dial(sip_of(2), &rtp, number, "route-call-1").await;
    // Its view must show itself full and both peers alive with room before the next INVITE:
    // on a loaded machine a peer can pass through `suspect` for a moment, and then the
    // right answer is 503, not the 302 under test.
    let full: Vec<(String, u64)> = vec![(id(0), 0), (id(1), 0), (id(2), 1)];
    wait_for_loads(
        &cluster,
        2,
        &full,
        "the full edge to see both peers alive with room",
    )
    .await;

    // An INVITE to it: 302 to a live peer, marked against loops.
    let caller = Invite::from("127.0.0.11", "route-call-2").await;
    let uri = format!("sip:{number}@{}", sip_of(2));
    let moved = caller.send(sip_of(2), &uri).await;
    assert!(moved.starts_with("SIP/2.0 302"), "{moved}");
    let contact = header(&moved, "Contact").expect("a Contact");
    let target_uri = contact.trim_matches(|c| c == '<' || c == '>').to_owned();
    let peer = (0..2)
        .find(|i| target_uri.contains(&format!("@{};", sip_of(*i))))
        .unwrap_or_else(|| panic!("the Contact {contact} names a live peer"));
    assert!(
        target_uri.starts_with(&format!("sip:{number}@")),
        "{contact}"
    );
    assert!(target_uri.ends_with(";freya-redirected"), "{contact}");
    let metrics = get_text(&format!("{}/metrics", cluster.http(2))).await;
    assert!(
        metrics.contains("freya_edge_sip_invites_redirected_total{cause=\"capacity\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("freya_edge_sip_invites_refused_total{reason=\"capacity\"}"),
        "a redirect is not a refusal: {metrics}"
    );

    // Following it: the peer answers.
    let followed = Invite::from("127.0.0.11", "route-call-2b").await;
    let answer = followed.send(sip_of(peer), &target_uri).await;
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");

    // No failed call was recorded for the redirect; the two calls are in progress.
    eventually(LIMIT, "two calls in progress", || async {
        let calls = cluster.get("/v1/calls").await?;
        let data = calls["data"].as_array()?;
        let live = data.iter().filter(|c| c["status"] == "in_progress").count();
        assert!(
            data.iter().all(|c| c["status"] != "failed"),
            "a redirect must not look like a failed call: {calls}"
        );
        (live == 2).then_some(())
    })
    .await;

    // The load tester follows a 302 once and counts it: its call to the full edge is answered
    // by the peer with room, and hangs up after two seconds. (Its INVITE comes from 127.0.0.1,
    // whose one INVITE a second the full edge took for the first call: wait out the token.)
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let report = cluster.path().join("loadtest.json");
    let sip_target = sip_of(2).to_string();
    let loadtest = tokio::process::Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["loadtest", "--target", &sip_target, "--number", number])
        .args(["--calls", "1", "--duration", "2", "--quiet", "--json"])
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(60), loadtest)
        .await
        .expect("the load test ends")
        .expect("the load test runs");
    assert!(status.success(), "{status}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON");
    assert_eq!(summary["redirects"], 1, "{summary}");
    assert_eq!(summary["succeeded"], 1, "{summary}");

    // Attack: an INVITE forged as already redirected is not redirected again, though a peer
    // still has room.
    let forger = Invite::from("127.0.0.12", "route-call-3").await;
    let forged = forger
        .send(sip_of(2), &format!("{uri};freya-redirected"))
        .await;
    assert!(forged.starts_with("SIP/2.0 503"), "{forged}");
    assert!(header(&forged, "Retry-After").is_some(), "{forged}");
    assert!(header(&forged, "Contact").is_none(), "{forged}");

    // The last free edge takes a call; once the full edge knows, it has nowhere to send one.
    let other = (0..2).find(|i| *i != peer).expect("the third edge");
    let filler = Invite::from("127.0.0.13", "route-call-4").await;
    let filled = filler
        .send(sip_of(other), &format!("sip:{number}@{}", sip_of(other)))
        .await;
    assert!(filled.starts_with("SIP/2.0 200"), "{filled}");
    let full: Vec<(String, u64)> = (0..3).map(|i| (id(i), 1)).collect();
    wait_for_loads(&cluster, 2, &full, "the full edge to see every peer full").await;
    let last = Invite::from("127.0.0.14", "route-call-5").await;
    let refused = last.send(sip_of(2), &uri).await;
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    assert!(header(&refused, "Retry-After").is_some(), "{refused}");
}
