//! The guard against real listeners on 127.0.0.1: each test performs the attack and checks that
//! the listener received nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A TCP listener that counts connections and answers each with `answer`.
async fn listener(answer: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

/// A GET of `url` through `client`, with a hang guard.
async fn get(client: &reqwest::Client, url: &str) -> reqwest::Result<reqwest::Response> {
    client.get(url).timeout(Duration::from_secs(5)).send().await
}

fn ok_answer() -> String {
    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".into()
}

fn guard(allow_private: bool) -> Egress {
    Egress::new(&EgressConfig {
        allow_private_targets: allow_private,
        proxy: None,
    })
    .expect("client")
}

#[test]
fn non_public_literals_are_refused_before_sending() {
    let egress = guard(false);
    for url in [
        "http://127.0.0.1:8080/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[2002:7f00:1::]/",
        "http://[2001::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://198.18.0.1/",
        "http://240.0.0.1/",
        "http://224.0.0.1/",
        "http://192.0.2.1/",
        "http://[2001:db8::1]/",
        "http://192.0.0.8/",
    ] {
        assert!(
            matches!(egress.check_url(url), Err(EgressError::NonPublic { .. })),
            "{url} was not refused: {:?}",
            egress.check_url(url)
        );
    }
    for url in [
        "file:///etc/passwd",
        "gopher://example.com/",
        "ftp://8.8.8.8/",
    ] {
        assert!(
            matches!(egress.check_url(url), Err(EgressError::Scheme { .. })),
            "{url}"
        );
    }
    assert!(egress.check_url("https://8.8.8.8/").is_ok());
    assert!(egress.check_url("https://example.com/x").is_ok());
    assert!(guard(true).check_url("http://127.0.0.1:1/").is_ok());
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_and_nothing_connects() {
    let (addr, hits) = listener(ok_answer()).await;
    let egress = guard(false);
    let url = format!("http://localhost:{}/", addr.port());
    assert!(
        egress.check_url(&url).is_ok(),
        "a name passes the literal check"
    );
    let error = get(egress.client(), &url).await.expect_err("refused");
    let chain = format!("{:?}", error);
    assert!(chain.contains("no public address"), "{chain}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // The same listener is reachable with the switch on, so the refusal above is the guard's.
    let answer = get(guard(true).client(), &url).await.expect("allowed");
    assert_eq!(answer.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// Where [`proxy_environment_child`] sends its requests, set by its parent.
const CHILD_TARGET: &str = "FREYA_EGRESS_TEST_TARGET";

#[tokio::test]
async fn proxy_environment_variables_are_ignored() {
    let (proxy, proxy_hits) = listener(ok_answer()).await;
    let (target, target_hits) = listener(ok_answer()).await;
    // The proxy variables go to a child process (this test binary, running the ignored test
    // below), so no other test in this process ever sees them.
    let exe = std::env::current_exe().expect("test binary");
    let proxy_url = format!("http://{proxy}");
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([
                "--exact",
                "egress::tests::proxy_environment_child",
                "--ignored",
            ])
            .env("HTTP_PROXY", &proxy_url)
            .env("http_proxy", &proxy_url)
            .env("ALL_PROXY", &proxy_url)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env(CHILD_TARGET, target.to_string())
            .stdout(std::process::Stdio::null())
            .status()
    })
    .await
    .expect("joined")
    .expect("child runs");
    assert!(status.success(), "the child test failed: {status}");
    // The plain client went through the proxy (the variables were in force); the guard's did not.
    assert_eq!(
        proxy_hits.load(Ordering::SeqCst),
        1,
        "the proxy saw the wrong requests"
    );
    assert_eq!(target_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
#[ignore = "run by proxy_environment_variables_are_ignored, with proxy variables set"]
async fn proxy_environment_child() {
    let target = std::env::var(CHILD_TARGET).expect("run by its parent test");
    let url = format!("http://{target}/");
    let plain = get(&reqwest::Client::new(), &url)
        .await
        .expect("answered by the proxy");
    assert_eq!(plain.status(), 200);
    let guarded = get(guard(true).client(), &url)
        .await
        .expect("sent directly");
    assert_eq!(guarded.status(), 200);
}

#[tokio::test]
async fn an_explicit_proxy_is_used() {
    let (proxy, proxy_hits) = listener(ok_answer()).await;
    let egress = Egress::new(&EgressConfig {
        allow_private_targets: true,
        proxy: Some(format!("http://{proxy}")),
    })
    .expect("client");
    let answer = get(egress.client(), "http://example.invalid/")
        .await
        .expect("through the proxy");
    assert_eq!(answer.status(), 200);
    assert_eq!(proxy_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_to_loopback_is_not_followed() {
    let (inner, inner_hits) = listener(ok_answer()).await;
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://{inner}/admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    let (outer, outer_hits) = listener(redirect).await;
    // Private targets on, so the first hop (a stand-in for a public server) can be reached at
    // all: even then the guard follows no redirect, so the inner listener sees nothing.
    let answer = get(guard(true).client(), &format!("http://{outer}/"))
        .await
        .expect("answered");
    assert_eq!(answer.status(), 302);
    assert_eq!(outer_hits.load(Ordering::SeqCst), 1);
    assert_eq!(inner_hits.load(Ordering::SeqCst), 0);
}

#[test]
fn the_resolver_hands_on_only_public_addresses() {
    let found: Vec<SocketAddr> = ["127.0.0.1:0", "8.8.8.8:0", "[::1]:0", "[2606:4700::1]:0"]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
    let public = public_addresses(&found);
    assert_eq!(public, vec![found[1], found[3]]);
    assert!(public_addresses(&found[..1]).is_empty());
}
