//! The README's first call, as a newcomer makes it: `freya dev` as the README's run command
//! starts it, then the `freya call` example from the README's "Calling the demo agent" section,
//! read from the README itself so the two cannot drift apart (only the program's path, the SIP
//! address of this test's `freya dev` and the recording's directory differ). Offline, with the
//! demo agent's own recogniser, rules and voice. The call record must show the greeting heard
//! whole, the question answered with the opening hours, no apology or fallback line, and the
//! goodbye ending the call.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::eventually;
use serde_json::Value;

/// Stops the child on drop, so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `freya call` example of the README's "Calling the demo agent" section, as arguments.
fn readme_call_example() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("## Calling the demo agent")
        .nth(1)
        .expect("the README has a 'Calling the demo agent' section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section opens with a sh block");
    let command = block.replace("\\\n", " ");
    let command = command
        .lines()
        .find(|l| l.contains("freya call"))
        .expect("the block runs freya call");
    shell_words(command)
}

/// Splits a command line the way a shell does for plain words and double-quoted strings.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quoted, mut in_word) = (false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// A loopback port free for UDP and TCP alike (SIP listens on both).
fn free_sip_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_dev(data_dir: &Path, sip: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["dev", "--data-dir"])
        .arg(data_dir)
        .args(["--http", "127.0.0.1:0", "--sip", sip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start freya dev");
    Running(child)
}

async fn get(url: &str, key: &str) -> Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_call_example_gets_the_opening_hours_from_the_demo_agent() {
    let args = readme_call_example();
    assert_eq!(args[1], "call", "{args:?}");
    assert!(
        args.iter().any(|a| a.contains("opening hours")),
        "the README's example asks for the opening hours: {args:?}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("freya-data");
    let sip = format!("127.0.0.1:{}", free_sip_port());
    let _dev = start_dev(&data_dir, &sip);
    // On a machine's first start `freya dev` adapts its recogniser before it is ready (about half
    // a minute, longer while the rest of the suite runs).
    let info: Value = eventually(
        Duration::from_secs(300),
        "freya dev writes dev.json",
        || {
            let path = data_dir.join("dev.json");
            async move {
                let info: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                let ready = reqwest::get(format!("{}/readyz", info["api_url"].as_str()?))
                    .await
                    .ok()?;
                ready.status().is_success().then_some(info)
            }
        },
    )
    .await;
    let api = info["api_url"].as_str().expect("api_url").to_owned();
    let key = info["api_key"].as_str().expect("api_key").to_owned();
    eventually(Duration::from_secs(30), "the edge is online", || {
        let (api, key) = (api.clone(), key.clone());
        async move {
            let edges = get(&format!("{api}/v1/edges"), &key).await;
            (edges[0]["status"] == "online").then_some(())
        }
    })
    .await;

    // The README's example, with this test's binary, SIP address and directory.
    let call_args: Vec<String> = args[1..]
        .iter()
        .map(|a| a.replace("127.0.0.1:5060", &sip))
        .collect();
    let call = tokio::process::Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(&call_args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), call)
        .await
        .expect("freya call finishes within two minutes")
        .expect("freya call runs");
    let printed = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "freya call failed:\n{printed}");
    assert!(dir.path().join("agent.wav").is_file(), "--record agent.wav");

    let calls = get(&format!("{api}/v1/calls"), &key).await;
    let call_id = calls["data"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("one call recorded: {calls}\n{printed}"))
        .to_owned();
    let record = eventually(
        Duration::from_secs(20),
        "the call's record is complete",
        || {
            let (api, key, call_id) = (api.clone(), key.clone(), call_id.clone());
            async move {
                let record = get(&format!("{api}/v1/calls/{call_id}"), &key).await;
                record["ended_at"].is_string().then_some(record)
            }
        },
    )
    .await;
    let transcript = record["transcript"].as_array().cloned().unwrap_or_default();
    let agent_lines: Vec<&Value> = transcript.iter().filter(|t| t["role"] == "agent").collect();
    let text = |t: &Value| t["text"].as_str().unwrap_or_default().to_owned();
    let all = format!("{transcript:#?}\nfreya call printed:\n{printed}");

    let greeting = agent_lines
        .first()
        .unwrap_or_else(|| panic!("a greeting: {all}"));
    assert!(
        text(greeting).starts_with("Hello, thanks for calling Freya"),
        "{all}"
    );
    assert_eq!(
        greeting["interrupted"], false,
        "the greeting was heard whole: {all}"
    );
    assert!(
        agent_lines
            .iter()
            .any(|t| text(t).contains("We are open Monday to Friday")),
        "the question got the opening hours: {all}"
    );
    assert!(
        !agent_lines.iter().any(|t| text(t).contains("Sorry")),
        "no apology or fallback turn: {all}"
    );
    assert!(
        agent_lines.iter().any(|t| text(t).contains("Goodbye")),
        "the goodbye was understood: {all}"
    );
}

#[test]
fn shell_words_keep_quoted_strings_whole() {
    assert_eq!(
        shell_words(r#"freya call sip:demo@h --say "Hello, there?"  --record a.wav"#),
        [
            "freya",
            "call",
            "sip:demo@h",
            "--say",
            "Hello, there?",
            "--record",
            "a.wav"
        ]
    );
}
