//! The `freya` binary as a user runs it: `freya dev` comes up with an edge online and a seeded
//! demo, stops cleanly on a signal and reuses its demo on restart; a bad config file is refused
//! with an error naming the key; `freya migrate` migrates.

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::eventually;
use serde_json::Value;

fn freya() -> Command {
    Command::new(env!("CARGO_BIN_EXE_freya"))
}

/// Stops the child on drop, so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn interrupt_and_wait(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("freya dev did not stop within 10 s of SIGINT");
    }
}

/// Starts `freya dev` in `data_dir`, with the previous dev.json left in place or removed.
fn start_dev(data_dir: &Path, keep_previous: bool) -> Running {
    if !keep_previous {
        let _ = std::fs::remove_file(data_dir.join("dev.json"));
    }
    let child = freya()
        .args(["dev", "--data-dir"])
        .arg(data_dir)
        .args(["--http", "127.0.0.1:0", "--sip", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start freya dev");
    Running(child)
}

/// The dev.json written by a process whose API is not `stale_api_url`.
async fn read_dev_json(data_dir: &Path, stale_api_url: Option<&Value>) -> Value {
    let path = data_dir.join("dev.json");
    eventually(Duration::from_secs(300), "a new dev.json", || {
        let path = path.clone();
        async move {
            let bytes = std::fs::read(&path).ok()?;
            let info: Value = serde_json::from_slice(&bytes).ok()?;
            (Some(&info["api_url"]) != stale_api_url).then_some(info)
        }
    })
    .await
}

#[tokio::test]
async fn freya_dev_runs_a_control_plane_with_an_online_edge_and_reuses_its_demo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = start_dev(dir.path(), false);
    let info = read_dev_json(dir.path(), None).await;
    for key in [
        "api_url",
        "api_key",
        "sip_uri",
        "sip_addr",
        "dashboard_url",
        "workspace_id",
        "agent_id",
        "admin_email",
        "admin_password",
    ] {
        assert!(
            info[key].as_str().is_some_and(|v| !v.is_empty()),
            "dev.json lacks {key}: {info}"
        );
    }
    assert_eq!(info["phone_number"], "demo");
    let api = info["api_url"].as_str().expect("api_url").to_owned();
    let key = info["api_key"].as_str().expect("api_key").to_owned();
    let client = reqwest::Client::new();
    eventually(Duration::from_secs(20), "the dev edge to be online", || {
        let (client, api, key) = (client.clone(), api.clone(), key.clone());
        async move {
            let edges: Value = client
                .get(format!("{api}/v1/edges"))
                .bearer_auth(&key)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let edge = edges.as_array()?.first()?.clone();
            (edge["status"] == "online" && edge["region"] == "local").then_some(())
        }
    })
    .await;
    let numbers: Value = client
        .get(format!("{api}/v1/phone-numbers"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("numbers")
        .json()
        .await
        .expect("json");
    assert_eq!(numbers["data"][0]["number"], "demo");
    assert_eq!(numbers["data"][0]["agent_id"], info["agent_id"]);
    assert!(
        dev.interrupt_and_wait().success(),
        "freya dev exits 0 on Ctrl-C"
    );

    // A second start reuses the seeded demo rather than seeding another.
    let again = start_dev(dir.path(), true);
    let info2 = read_dev_json(dir.path(), Some(&info["api_url"])).await;
    assert_eq!(info2["api_key"], info["api_key"]);
    assert_eq!(info2["agent_id"], info["agent_id"]);
    assert!(again.interrupt_and_wait().success());

    // Without dev.json the demo is found in the database: same agent, a fresh key that works.
    let third = start_dev(dir.path(), false);
    let info3 = read_dev_json(dir.path(), Some(&info2["api_url"])).await;
    assert_eq!(info3["agent_id"], info["agent_id"]);
    assert_eq!(info3["workspace_id"], info["workspace_id"]);
    assert_ne!(info3["api_key"], info["api_key"]);
    let api3 = info3["api_url"].as_str().expect("api_url");
    let status = client
        .get(format!("{api3}/v1/agents"))
        .bearer_auth(info3["api_key"].as_str().expect("key"))
        .send()
        .await
        .expect("agents")
        .status();
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(third.interrupt_and_wait().success());
}

#[test]
fn a_bad_config_file_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        ("[database]\nurl = \"sqlite://x\"\n[edges]\nshared_secret = \"0123456789abcdef\"\nheartbeat_interval_ms = \"often\"\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\nencryption_key = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n", "edges.heartbeat_interval_ms"),
        ("[database]\nurl = \"mysql://x\"\n[edges]\nshared_secret = \"0123456789abcdef\"\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\nencryption_key = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n", "database.url"),
        ("[database]\nurl = \"sqlite://x\"\n[edges]\nshared_secret = \"short\"\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\nencryption_key = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n", "edges.shared_secret"),
        ("[database]\nurl = \"sqlite://x\"\n[edges]\nshared_secret = \"0123456789abcdef\"\n[auth]\njwt_secret = \"short\"\nencryption_key = \"00\"\n", "auth.jwt_secret"),
        ("[database]\nurl = \"sqlite://x\"\n[edges]\nshared_secret = \"0123456789abcdef\"\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\nencryption_key = \"00\"\n", "auth.encryption_key"),
        ("[database]\nurl = \"sqlite://x\"\n[edges]\nshared_secret = \"0123456789abcdef\"\n", "auth"),
        ("[database]\nurl = \"sqlite://x\"\n[edges]\nshared_secret = \"0123456789abcdef\"\n[http]\nadress = \"1.2.3.4:5\"\n", "adress"),
        ("[edges]\nshared_secret = \"0123456789abcdef\"\n", "database"),
    ];
    for (n, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{n}.toml"));
        std::fs::write(&path, text).expect("write config");
        let out = freya()
            .args(["control", "--config"])
            .arg(&path)
            .output()
            .expect("run freya control");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {n} should fail");
        assert!(
            stderr.contains(key),
            "case {n}: stderr should name `{key}`: {stderr}"
        );
    }
    let edge = dir.path().join("edge.toml");
    std::fs::write(&edge, "region = \"Not A Region\"\ndata_dir = \"/tmp/x\"\n[control]\nurl = \"http://127.0.0.1:7070\"\nshared_secret = \"s\"\n").expect("write");
    let out = freya()
        .args(["edge", "--config"])
        .arg(&edge)
        .output()
        .expect("run freya edge");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`region`"));
    // Environment overrides are validated the same way.
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[database]\nurl = \"sqlite://x\"\n[edges]\nshared_secret = \"0123456789abcdef\"\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\nencryption_key = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n",
    )
    .expect("write");
    let out = freya()
        .args(["control", "--config"])
        .arg(&good)
        .env("FREYA_GRPC__ADDR", "nowhere")
        .output()
        .expect("run freya control");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("grpc.addr"));
}

#[test]
fn freya_migrate_prepares_a_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    for _ in 0..2 {
        let out = freya()
            .args(["migrate", "--database-url", &url])
            .output()
            .expect("run migrate");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    }
}

/// The first person of a new deployment: `freya create-user` on the control plane's database,
/// then a login through the API works; the same email twice and a short password are refused.
#[tokio::test]
async fn freya_create_user_makes_the_first_person_who_can_log_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let create = |password: Option<&str>| {
        let mut command = freya();
        command.args([
            "create-user",
            "--database-url",
            &url,
            "--email",
            "Ops@Example.com",
            "--name",
            "Ops",
        ]);
        command.env_remove("FREYA_USER_PASSWORD");
        if let Some(password) = password {
            command.env("FREYA_USER_PASSWORD", password);
        }
        command.output().expect("run create-user")
    };
    let short = create(Some("too-short"));
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12"));

    let made = create(Some("a-long-enough-password"));
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(said.contains("created user"), "{said}");
    assert!(
        !said.contains("a-long-enough-password"),
        "a given password is not echoed"
    );

    let again = create(None);
    assert!(!again.status.success(), "the same email twice");
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let control = freya_control::server::ControlPlane::start(&support::control_config(&url))
        .await
        .expect("control starts");
    let api = support::http::Api::of(&control);
    let token = support::http::login(&api, "ops@example.com", "a-long-enough-password").await;
    let workspace = api
        .create(
            "/v1/workspaces",
            &token,
            serde_json::json!({"name": "Production"}),
        )
        .await;
    assert!(workspace["id"].as_str().is_some(), "{workspace}");
    control.stop().await;
}
