//! The server's connections, plain or TLS, and the stream of them the server is given.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

use super::ReloadingCertificate;

/// How long a client may take to complete its TLS handshake before its connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes completed, waiting for the server to take them.
const READY_CONNECTIONS: usize = 64;

/// A connection the server serves: plain TCP, or TLS over TCP.
pub enum ServerConnection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Accepts connections on `listener`: as they are, or, with `tls`, once each has completed its
/// handshake (each on a task of its own, so that a slow client holds up no other).
pub fn accept(
    listener: TcpListener,
    tls: Option<(TlsAcceptor, Arc<ReloadingCertificate>)>,
) -> Pin<Box<dyn Stream<Item = io::Result<ServerConnection>> + Send>> {
    let mut incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let Some((acceptor, certificate)) = tls else {
        return Box::pin(incoming.map(|accepted| accepted.map(ServerConnection::Plain)));
    };
    let (ready, connections) = tokio::sync::mpsc::channel(READY_CONNECTIONS);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                accepted = incoming.next() => match accepted {
                    Some(Ok(tcp)) => tcp,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        continue;
                    }
                    None => return,
                },
                // The server stopped taking connections.
                () = ready.closed() => return,
            };
            // A renewed certificate is picked up by the first connection after it.
            certificate.reload_if_changed();
            let (acceptor, ready) = (acceptor.clone(), ready.clone());
            tokio::spawn(async move {
                let peer = tcp.peer_addr().ok();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = ready.send(Ok(ServerConnection::Tls(Box::new(tls)))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, ?peer, "TLS handshake failed"),
                    Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
                }
            });
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(connections))
}

impl Connected for ServerConnection {
    type ConnectInfo = TcpConnectInfo;

    /// The TCP connection's addresses, so that handlers see the peer's address either way.
    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            Self::Plain(tcp) => tcp.connect_info(),
            Self::Tls(tls) => tls.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for ServerConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
