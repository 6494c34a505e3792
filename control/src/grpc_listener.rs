//! The gRPC listener for edges, held to connection caps, and (in a cluster) its TLS. Anyone who
//! can reach the port can open a TCP connection before any credential is checked, so
//! without caps one client could hold every file descriptor of the control plane. Each accepted
//! connection takes a slot under `grpc.max_connections_per_ip` and `grpc.max_connections` for its
//! life; over either cap it is closed at once, with a rate-limited warning. HTTP/2 keepalive
//! pings find peers that vanished without closing. With TLS, each handshake runs in its own task
//! under a deadline (a slow client holds only its own slot), and a handshake refused for its
//! certificate (another cluster's, expired, revoked) is reported to `on_refused` for the audit.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::server::Connected;

use crate::trust::revoked::RevokedSerials;
use crate::trust::tls::{edge_certificate, EdgeCertificate};
use freya_edge::serve::{ConnectionGate, Permit};

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an idle edge connection is pinged, and how long the answer may take.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// See [`KEEPALIVE_INTERVAL`].
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted connection and its slot under the caps, freed when tonic drops it.
pub(crate) struct GatedConnection {
    stream: TcpStream,
    _permit: Permit,
}

/// What a handler knows of the connection a request came on: the peer's address and, over TLS,
/// the edge its verified certificate names.
#[derive(Debug, Clone)]
pub(crate) struct EdgePeer {
    pub remote: Option<SocketAddr>,
    pub certificate: Option<EdgeCertificate>,
}

/// An accepted edge connection, in the clear (`freya dev`'s shared-secret mode) or over TLS.
/// Over TLS it ends (reads and writes fail) once its certificate is revoked: hyper then closes
/// the connection and every gRPC stream on it, at revocation rather than at the next connect.
pub(crate) struct EdgeConnection {
    io: EdgeIo,
    peer: EdgePeer,
    cut: Option<Cut>,
}

/// The revocation of a connection's certificate, as a future its reads and writes poll.
struct Cut {
    token: tokio_util::sync::CancellationToken,
    revoked: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
}

impl Cut {
    fn new(token: tokio_util::sync::CancellationToken) -> Self {
        Self {
            revoked: Box::pin(token.clone().cancelled_owned()),
            token,
        }
    }
}

impl Drop for EdgeConnection {
    fn drop(&mut self) {
        // Marks the token done so the revocation list forgets it.
        if let Some(cut) = &self.cut {
            cut.token.cancel();
        }
    }
}

impl EdgeConnection {
    /// An error once the certificate is revoked (registering the waker until then).
    fn check_cut(&mut self, cx: &mut Context<'_>) -> Result<(), io::Error> {
        let Some(cut) = &mut self.cut else {
            return Ok(());
        };
        if cut.revoked.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the edge's certificate was revoked",
            ));
        }
        Ok(())
    }
}

enum EdgeIo {
    Plain(GatedConnection),
    Tls(Box<TlsStream<GatedConnection>>),
}

impl Connected for EdgeConnection {
    type ConnectInfo = EdgePeer;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

impl AsyncRead for EdgeConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check_cut(cx) {
            return Poll::Ready(Err(e));
        }
        match &mut self.io {
            EdgeIo::Plain(c) => Pin::new(c).poll_read(cx, buf),
            EdgeIo::Tls(c) => Pin::new(c.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EdgeConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check_cut(cx) {
            return Poll::Ready(Err(e));
        }
        match &mut self.io {
            EdgeIo::Plain(c) => Pin::new(c).poll_write(cx, buf),
            EdgeIo::Tls(c) => Pin::new(c.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            EdgeIo::Plain(c) => Pin::new(c).poll_flush(cx),
            EdgeIo::Tls(c) => Pin::new(c.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            EdgeIo::Plain(c) => Pin::new(c).poll_shutdown(cx),
            EdgeIo::Tls(c) => Pin::new(c.as_mut()).poll_shutdown(cx),
        }
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
) -> impl Stream<Item = io::Result<EdgeConnection>> {
    TcpListenerStream::new(listener).filter_map(move |accepted| {
        let admitted = match accepted {
            Ok(stream) => admit(&gate, stream).map(|c| {
                Ok(EdgeConnection {
                    peer: EdgePeer {
                        remote: c.stream.peer_addr().ok(),
                        certificate: None,
                    },
                    io: EdgeIo::Plain(c),
                    cut: None,
                })
            }),
            Err(e) => Some(Err(e)),
        };
        std::future::ready(admitted)
    })
}

/// Told of each handshake refused for the client's certificate: the peer and the reason.
pub(crate) type RefusedHandshake = Arc<dyn Fn(SocketAddr, String) + Send + Sync>;

/// [`gated`] connections after a TLS handshake with `acceptor`, each in its own task; the
/// accept loop ends when tonic stops reading the stream.
pub(crate) fn gated_tls(
    listener: TcpListener,
    gate: ConnectionGate,
    acceptor: TlsAcceptor,
    on_refused: RefusedHandshake,
    revoked: RevokedSerials,
) -> impl Stream<Item = io::Result<EdgeConnection>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let Some(connection) = admit(&gate, stream) else {
                continue;
            };
            let (tx, acceptor, on_refused) = (tx.clone(), acceptor.clone(), on_refused.clone());
            let revoked = revoked.clone();
            tokio::spawn(async move {
                let remote = connection.stream.peer_addr().ok();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(connection)).await {
                    Ok(Ok(tls)) => {
                        let certificate = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(|der| edge_certificate(der));
                        let cut = certificate
                            .as_ref()
                            .map(|c| Cut::new(revoked.cut_for(&c.serial)));
                        let peer = EdgePeer {
                            remote,
                            certificate,
                        };
                        let _ = tx
                            .send(Ok(EdgeConnection {
                                io: EdgeIo::Tls(Box::new(tls)),
                                peer,
                                cut,
                            }))
                            .await;
                    }
                    Ok(Err(e)) => {
                        if let (Some(reason), Some(remote)) = (certificate_refusal(&e), remote) {
                            on_refused(remote, reason);
                        }
                    }
                    Err(_) => {}
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Why a handshake failed, when it was for the client's certificate.
fn certificate_refusal(error: &io::Error) -> Option<String> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(why) => Some(format!("{why:?}")),
        _ => None,
    }
}

fn admit(gate: &ConnectionGate, stream: TcpStream) -> Option<GatedConnection> {
    let peer: SocketAddr = stream.peer_addr().ok()?;
    let permit = gate.admit(peer).ok()?;
    Some(GatedConnection {
        stream,
        _permit: permit,
    })
}
