//! The operator's runbook, walked: `deploy/README.md` section 1 ("From nothing to two regions")
//! is read and followed as written on one machine — its control-plane TOML and `control.env`,
//! its shell blocks for the first person, the workspace and the join tokens (run by bash, with
//! `curl` and `jq`), and its edge TOML for two edges in each of two regions. Only what a single
//! machine cannot copy is changed: every host becomes its own loopback address (the ports stay
//! the runbook's), the paths become a temp dir, and PostgreSQL is the test server. The walk
//! ends where the runbook does: every edge online in its region, the edges gossiping across
//! regions, and a call to a number homed in the other region redirected there.
//!
//! When the runbook changes, this test follows it; when it stops being followable (a key the
//! code refuses, a command that fails, a step missing), the test says which.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{eventually, Backend, TestDb};
use serde_json::{json, Value};
use tokio::net::UdpSocket;

const LIMIT: Duration = Duration::from_secs(120);
const RUNBOOK: &str = include_str!("../../deploy/README.md");

/// The hosts of the runbook, each given a loopback address of its own.
const CONTROL_PLANES: [(&str, &str); 2] =
    [("control-us-1", "127.0.1.1"), ("control-eu-1", "127.0.1.2")];
const EDGES: [(&str, &str, &str); 4] = [
    ("edge-us-1", "us-east", "127.0.1.11"),
    ("edge-us-2", "us-east", "127.0.1.12"),
    ("edge-eu-1", "eu-west", "127.0.1.21"),
    ("edge-eu-2", "eu-west", "127.0.1.22"),
];

/// The fenced blocks of section 1, as (language, text).
fn section_one_blocks() -> Vec<(String, String)> {
    let start = RUNBOOK
        .find("## 1. From nothing to two regions")
        .expect("the runbook has section 1");
    let end = RUNBOOK[start..]
        .find("\n## 2.")
        .map_or(RUNBOOK.len(), |e| start + e);
    let mut blocks = Vec::new();
    let mut lines = RUNBOOK[start..end].lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            blocks.push((lang.to_owned(), body.join("\n")));
        }
    }
    blocks
}

/// The one block of `lang` that contains `marker`.
fn block<'a>(blocks: &'a [(String, String)], lang: &str, marker: &str) -> &'a str {
    let found: Vec<&str> = blocks
        .iter()
        .filter(|(l, b)| l == lang && b.contains(marker))
        .map(|(_, b)| b.as_str())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one `{lang}` block with `{marker}` in section 1"
    );
    found[0]
}

/// The `KEY=VALUE` lines of the here-document that writes `control.env`.
fn control_env(blocks: &[(String, String)]) -> Vec<(String, String)> {
    let script = block(blocks, "sh", "control.env <<EOF");
    script
        .lines()
        .skip_while(|l| !l.contains("<<EOF"))
        .skip(1)
        .take_while(|l| l.trim() != "EOF")
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE in control.env");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Processes killed when the walk ends, however it ends; when it fails, the end of each one's
/// log is printed, so the step that broke says why.
struct Running(Vec<(Child, std::path::PathBuf)>);

impl Running {
    /// Starts `command` with its output in `log`.
    fn start(&mut self, mut command: Command, log: std::path::PathBuf) {
        let file = std::fs::File::create(&log).expect("a log file");
        let err = file.try_clone().expect("a log file");
        let child = command
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start freya");
        self.0.push((child, log));
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for (child, log) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("--- {}", log.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn freya() -> Command {
    Command::new(env!("CARGO_BIN_EXE_freya"))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runbook_takes_a_reader_from_nothing_to_two_regions() {
    let blocks = section_one_blocks();
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut running = Running(Vec::new());

    // 1.2 and 1.4: the secrets and the control planes, from the runbook's TOML and env file.
    let mut env: Vec<(String, String)> = Vec::new();
    for (key, value) in control_env(&blocks) {
        let value = match (key.as_str(), value.as_str()) {
            ("FREYA_DATABASE__URL", _) => db.url.clone(),
            (_, "...") => random_hex(),
            _ => panic!("control.env has {key}, which the walk does not know how to fill"),
        };
        env.push((key, value));
    }
    let env_file = dir.path().join("control.env");
    write(
        &env_file,
        &env.iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect::<String>(),
    );
    let control_toml = block(&blocks, "toml", "[grpc]");
    for (host, ip) in CONTROL_PLANES {
        let recordings = dir.path().join(host).join("recordings");
        let config = control_toml.replace("0.0.0.0", ip).replace(
            "/var/lib/freya-control/recordings",
            &recordings.display().to_string(),
        );
        let path = dir.path().join(format!("{host}.toml"));
        write(&path, &config);
        let mut control = freya();
        control
            .args(["control", "--config"])
            .arg(&path)
            .envs(env.iter().map(|(k, v)| (k, v)));
        running.start(control, dir.path().join(format!("{host}.log")));
    }
    let http = reqwest::Client::new();
    for (host, ip) in CONTROL_PLANES {
        let ready = format!("http://{ip}:8080/readyz");
        eventually(LIMIT, &format!("{host} ready"), || {
            let (http, ready) = (http.clone(), ready.clone());
            async move {
                let answer = http.get(&ready).send().await.ok()?;
                answer.status().is_success().then_some(())
            }
        })
        .await;
    }

    // 1.5 and 1.6: the first person, the workspace and a join token per edge, by the runbook's
    // own shell blocks (bash, curl, jq), with `freya` on the PATH.
    let (us_host, us_ip) = CONTROL_PLANES[0];
    let first_person = block(&blocks, "sh", "create-user")
        .replace("/etc/freya/control.env", &env_file.display().to_string());
    let workspace = block(&blocks, "sh", "/v1/auth/login").replace(
        &format!("http://{us_host}:8080"),
        &format!("http://{us_ip}:8080"),
    );
    let join = block(&blocks, "sh", "/v1/edges/join-tokens");
    let script = format!(
        "set -euo pipefail\n{first_person}\n{workspace}\necho \"TOKEN=$TOKEN\"\necho \"WS=$WS\"\n\
         join() {{\n{join}\n}}\nfor i in 1 2 3 4; do echo \"JOIN=$(join)\"; done\n"
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_freya"))
        .parent()
        .expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let walked = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .output()
        .expect("run bash");
    let out = String::from_utf8_lossy(&walked.stdout).into_owned();
    assert!(
        walked.status.success(),
        "the runbook's steps 1.5 and 1.6 failed: {}\n{out}\n{}",
        walked.status,
        String::from_utf8_lossy(&walked.stderr)
    );
    let value = |prefix: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_owned)
            .collect()
    };
    let token = value("TOKEN=").pop().expect("a person's token");
    let ws = value("WS=").pop().expect("a workspace id");
    let joins = value("JOIN=");
    assert_eq!(joins.len(), 4, "four join tokens: {out}");
    assert!(
        joins.iter().all(|j| j.starts_with("freya-join.")),
        "{joins:?}"
    );

    // 1.7: the edges, from the runbook's TOML, each with its join token in its env.
    let edge_toml = block(&blocks, "toml", "[control]");
    for ((id, region, ip), join) in EDGES.iter().zip(&joins) {
        let data = dir.path().join(id);
        let mut config = edge_toml
            .replace("edge-us-1", id)
            .replace("\"us-east\"", &format!("\"{region}\""))
            .replace("/var/lib/freya-edge", &data.display().to_string())
            .replace("0.0.0.0", ip)
            .replace("203.0.113.11", ip);
        // "the region's control plane first"
        let (first, second) = if *region == "us-east" {
            (CONTROL_PLANES[0], CONTROL_PLANES[1])
        } else {
            (CONTROL_PLANES[1], CONTROL_PLANES[0])
        };
        config = config
            .replace(
                "\"https://control-us-1:7070\", \"https://control-eu-1:7070\"",
                &format!(
                    "\"https://{}:7070\", \"https://{}:7070\"",
                    first.1, second.1
                ),
            )
            .replace("control-us-1", CONTROL_PLANES[0].1)
            .replace("control-eu-1", CONTROL_PLANES[1].1);
        let path = dir.path().join(format!("{id}.toml"));
        write(&path, &config);
        let mut edge = freya();
        edge.args(["edge", "--config"])
            .arg(&path)
            .env("FREYA_CONTROL__JOIN_TOKEN", join);
        running.start(edge, dir.path().join(format!("{id}.log")));
    }

    // "GET /v1/edges on the API lists all four, with their regions."
    let api = format!("http://{us_ip}:8080");
    let get = |path: String| {
        let (http, token, ws) = (http.clone(), token.clone(), ws.clone());
        async move {
            http.get(path)
                .bearer_auth(&token)
                .header("x-workspace-id", &ws)
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
        }
    };
    eventually(LIMIT, "all four edges online in their regions", || {
        let url = format!("{api}/v1/edges");
        async move {
            let edges = get(url).await?;
            let online: Vec<(String, String)> = edges
                .as_array()?
                .iter()
                .filter(|e| e["status"] == "online")
                .filter_map(|e| {
                    Some((
                        e["id"].as_str()?.to_owned(),
                        e["region"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            EDGES
                .iter()
                .all(|(id, region, _)| online.contains(&(id.to_string(), region.to_string())))
                .then_some(())
        }
    })
    .await;
    for (id, _, ip) in EDGES {
        let ready = format!("http://{ip}:8081/readyz");
        eventually(LIMIT, &format!("{id} ready"), || {
            let (http, ready) = (http.clone(), ready.clone());
            async move {
                let answer = http.get(&ready).send().await.ok()?;
                answer.status().is_success().then_some(())
            }
        })
        .await;
    }

    // 1.8: a number homed in eu-west that fails over to us-east. While its home region has room,
    // a call to it reaching a us-east edge is sent home.
    let post = |path: &str, body: Value| {
        let (http, token, ws) = (http.clone(), token.clone(), ws.clone());
        let url = format!("{api}{path}");
        async move {
            let answer = http
                .post(url)
                .bearer_auth(&token)
                .header("x-workspace-id", &ws)
                .json(&body)
                .send()
                .await
                .expect("POST");
            let status = answer.status();
            let body: Value = answer.json().await.expect("JSON");
            assert!(status.is_success(), "{status}: {body}");
            body
        }
    };
    let agent = post(
        "/v1/agents",
        json!({"name": "Desk", "first_message": "Hello"}),
    )
    .await;
    let number = "+15550123";
    post(
        "/v1/phone-numbers",
        json!({"number": number, "agent_id": agent["id"], "region": "eu-west", "regions": ["us-east"]}),
    )
    .await;
    let us_edge: SocketAddr = format!("{}:5060", EDGES[0].2).parse().expect("addr");
    let caller = UdpSocket::bind("127.0.0.1:0").await.expect("caller socket");
    let mut attempt = 0;
    let moved = eventually(LIMIT, "a 302 from the us-east edge to eu-west", || {
        attempt += 1;
        let caller = &caller;
        async move {
            let answer = invite(caller, us_edge, number, &format!("walk-{attempt}")).await?;
            answer.starts_with("SIP/2.0 302").then_some(answer)
        }
    })
    .await;
    let contact = moved
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("contact:"))
        .expect("a Contact");
    assert!(
        EDGES[2..]
            .iter()
            .any(|(_, _, ip)| contact.contains(&format!("@{ip}:5060"))),
        "the Contact names an eu-west edge: {contact}"
    );

    drop(running);
    db.cleanup().await;
}

/// Sends one INVITE from `caller` and returns the first final answer (or `None` within 5 s).
async fn invite(
    caller: &UdpSocket,
    edge: SocketAddr,
    number: &str,
    call_id: &str,
) -> Option<String> {
    let local = caller.local_addr().ok()?;
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        ip = local.ip()
    );
    let request = format!(
        "INVITE sip:{number}@{edge} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\n\
         From: <sip:+15559999@{local}>;tag=walker\r\nTo: <sip:{number}@{edge}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:+15559999@{local}>\r\n\
         Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    caller.send_to(request.as_bytes(), edge).await.ok()?;
    let mut buf = vec![0u8; 65_536];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (n, _) = caller.recv_from(&mut buf).await.ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains(&format!("Call-ID: {call_id}")) && !text.starts_with("SIP/2.0 1") {
                return Some(text);
            }
        }
    })
    .await
    .ok()
    .flatten()
}
