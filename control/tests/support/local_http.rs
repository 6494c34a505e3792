//! An HTTP server of the test's own on 127.0.0.1: webhook receivers, trace collectors and the
//! endpoints a workflow or a tool calls, each an axum router the test writes.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

/// Serves `app` on 127.0.0.1 (a port of its own) for the rest of the test: its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    serve_until(app, CancellationToken::new()).await
}

/// [`serve`] until `stop` is cancelled.
pub async fn serve_until(app: axum::Router, stop: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    addr
}
