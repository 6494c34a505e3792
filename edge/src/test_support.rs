//! Fixtures the edge's unit tests share across modules: an HTTP server of the test's own on
//! 127.0.0.1, an egress guard that lets a test reach it, an address where nothing listens, and
//! the last final transcript of a speech-to-text session.

use std::net::SocketAddr;

use crate::egress::{Egress, EgressConfig};

/// The egress guard with private targets allowed: the tests' fake providers and tool
/// endpoints listen on 127.0.0.1, which the production default refuses.
pub(crate) fn local_egress() -> Egress {
    Egress::new(&EgressConfig {
        allow_private_targets: true,
        proxy: None,
    })
    .expect("client")
}

/// An address on 127.0.0.1 where nothing listens: a port bound, then let go, so a connection
/// to it is refused (the port is very likely still free when the test connects).
pub(crate) async fn closed_address() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("address")
}

/// Serves `app` on a free port of 127.0.0.1 for the rest of the test, and says where.
pub(crate) async fn serve_locally(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Ends `session`'s audio and reads its events to the end: the text of its last final
/// transcript (empty when none came), failing the test on an error.
pub(crate) async fn final_text(session: &mut crate::speech::SttSession) -> String {
    session.finish().await.expect("finished");
    let mut text = String::new();
    while let Some(event) = session.next_event().await {
        if let crate::speech::SttEvent::Final { text: words, .. } = event.expect("no error") {
            text = words;
        }
    }
    text
}
