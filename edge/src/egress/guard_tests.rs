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
    for url in ["file:///etc/passwd", "gopher://example.com/", "ftp://8.8.8.8/"] {
        assert!(matches!(egress.check_url(url), Err(EgressError::Scheme { .. })), "{url}");
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
    assert!(egress.check_url(&url).is_ok(), "a name passes the literal check");
    let error = egress
        .client()
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect_err("refused");
    let chain = format!("{:?}", error);
    assert!(chain.contains("no public address"), "{chain}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // The same listener is reachable with the switch on, so the refusal above is the guard's.
    let answer = guard(true)
        .client()
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("allowed");
    assert_eq!(answer.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn proxy_environment_variables_are_ignored() {
    let (proxy, proxy_hits) = listener(ok_answer()).await;
    let (target, target_hits) = listener(ok_answer()).await;
    // Set for this process only; every guard client built afterwards must still ignore it.
    std::env::set_var("HTTP_PROXY", format!("http://{proxy}"));
    std::env::set_var("http_proxy", format!("http://{proxy}"));
    std::env::set_var("ALL_PROXY", format!("http://{proxy}"));
    let egress = guard(true);
    let answer = egress
        .client()
        .get(format!("http://{target}/"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    std::env::remove_var("HTTP_PROXY");
    std::env::remove_var("http_proxy");
    std::env::remove_var("ALL_PROXY");
    assert_eq!(answer.expect("sent directly").status(), 200);
    assert_eq!(proxy_hits.load(Ordering::SeqCst), 0, "the proxy saw the request");
    assert_eq!(target_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_explicit_proxy_is_used() {
    let (proxy, proxy_hits) = listener(ok_answer()).await;
    let egress = Egress::new(&EgressConfig {
        allow_private_targets: true,
        proxy: Some(format!("http://{proxy}")),
    })
    .expect("client");
    let answer = egress
        .client()
        .get("http://example.invalid/")
        .timeout(Duration::from_secs(5))
        .send()
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
    let answer = guard(true)
        .client()
        .get(format!("http://{outer}/"))
        .timeout(Duration::from_secs(5))
        .send()
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
