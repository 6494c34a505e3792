//! The gRPC listener for edges, held to connection caps. Anyone who can reach the port can open a
//! TCP connection before the shared secret is ever checked (that happens per request), so
//! without caps one client could hold every file descriptor of the control plane. Each accepted
//! connection takes a slot under `grpc.max_connections_per_ip` and `grpc.max_connections` for its
//! life; over either cap it is closed at once, with a rate-limited warning. HTTP/2 keepalive
//! pings find peers that vanished without closing.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use freya_edge::serve::{ConnectionGate, Permit};

/// How often an idle edge connection is pinged, and how long the answer may take.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// See [`KEEPALIVE_INTERVAL`].
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted connection and its slot under the caps, freed when tonic drops it.
pub(crate) struct GatedConnection {
    stream: TcpStream,
    _permit: Permit,
}

impl Connected for GatedConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for GatedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The connections `listener` accepts that fit under `gate`; the others are closed (dropped) as
/// they arrive. Accept errors (a full file table) are passed on for tonic to log and go on.
pub(crate) fn gated(
    listener: TcpListener,
    gate: ConnectionGate,
) -> impl Stream<Item = io::Result<GatedConnection>> {
    TcpListenerStream::new(listener).filter_map(move |accepted| {
        let admitted = match accepted {
            Ok(stream) => admit(&gate, stream).map(Ok),
            Err(e) => Some(Err(e)),
        };
        std::future::ready(admitted)
    })
}

fn admit(gate: &ConnectionGate, stream: TcpStream) -> Option<GatedConnection> {
    let peer: SocketAddr = stream.peer_addr().ok()?;
    let permit = gate.admit(peer).ok()?;
    Some(GatedConnection {
        stream,
        _permit: permit,
    })
}
