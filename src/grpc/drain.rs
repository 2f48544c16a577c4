//! The end of a graceful shutdown: what is still open when the drain deadline passes.
//!
//! Graceful shutdown (tonic's) stops accepting connections, tells clients to open no new calls and
//! waits for every call to finish, which a call that never finishes by itself (a
//! `grpc.health.v1.Health/Watch` or a reflection stream) would make it do forever. A
//! [`DrainDeadline`] ends such calls in two steps:
//!
//! 1. [`DrainDeadline::end_streams`]: every response still streaming ends at once with the status
//!    UNAVAILABLE, `SHUTTING_DOWN` and a `RetryInfo`, so that clients know to call again (another
//!    instance will answer). The [`DrainLayer`] does this; it costs a call nothing until its
//!    response waits for a message.
//! 2. [`DrainDeadline::cut_connections`]: for a call still not done (a handler that has not
//!    answered yet, or a client that does not read), every connection fails its reads and writes
//!    ([`Cuttable`]) and closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;
use tower_layer::Layer;
use tower_service::Service;

use super::error::shutting_down;

/// The signal of a passed drain deadline, shared by the [`DrainLayer`] and every [`Cuttable`]
/// connection of one server.
#[derive(Clone, Default)]
pub struct DrainDeadline {
    inner: Arc<Signals>,
}

#[derive(Default)]
struct Signals {
    /// Read on every poll of a response body, so that it is cheaper than polling `streams_end`.
    streams_ended: AtomicBool,
    streams_end: CancellationToken,
    connections_cut: CancellationToken,
}

impl DrainDeadline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every response still streaming with UNAVAILABLE, `SHUTTING_DOWN`.
    pub fn end_streams(&self) {
        self.inner.streams_ended.store(true, Ordering::Release);
        self.inner.streams_end.cancel();
    }

    /// Closes every connection.
    pub fn cut_connections(&self) {
        self.inner.connections_cut.cancel();
    }

    /// The layer that ends streaming responses on [`Self::end_streams`].
    pub fn layer(&self) -> DrainLayer {
        DrainLayer { deadline: self.clone() }
    }

    /// Wraps an accepted connection so that [`Self::cut_connections`] closes it.
    pub fn connection<IO>(&self, io: IO) -> Cuttable<IO> {
        Cuttable {
            io,
            cut: Box::pin(self.inner.connections_cut.clone().cancelled_owned()),
        }
    }

    fn streams_ended(&self) -> bool {
        self.inner.streams_ended.load(Ordering::Acquire)
    }
}

/// Ends the response bodies still streaming when the drain deadline passes.
#[derive(Clone)]
pub struct DrainLayer {
    deadline: DrainDeadline,
}

impl<S> Layer<S> for DrainLayer {
    type Service = Drained<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Drained {
            inner,
            deadline: self.deadline.clone(),
        }
    }
}

/// The service [`DrainLayer`] makes.
#[derive(Clone)]
pub struct Drained<S> {
    inner: S,
    deadline: DrainDeadline,
}

impl<S, Request, B> Service<Request> for Drained<S>
where
    S: Service<Request, Response = http::Response<B>>,
{
    type Response = http::Response<DrainedBody<B>>;
    type Error = S::Error;
    type Future = DrainedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        DrainedResponse {
            inner: self.inner.call(request),
            deadline: Some(self.deadline.clone()),
        }
    }
}

pin_project! {
    /// The response future of [`Drained`].
    pub struct DrainedResponse<F> {
        #[pin]
        inner: F,
        deadline: Option<DrainDeadline>,
    }
}

impl<F, B, E> Future for DrainedResponse<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<DrainedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let deadline = this.deadline.take().expect("polled after completion");
        Poll::Ready(Ok(response.map(|inner| DrainedBody {
            inner,
            deadline,
            wait: None,
            ended: false,
        })))
    }
}

pin_project! {
    /// A response body that ends with UNAVAILABLE, `SHUTTING_DOWN` once the drain deadline passes.
    pub struct DrainedBody<B> {
        #[pin]
        inner: B,
        deadline: DrainDeadline,
        // Made only when the body first waits for a message: most responses never do.
        wait: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        ended: bool,
    }
}

impl<B: Body> Body for DrainedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if !this.deadline.streams_ended() {
            if let ready @ Poll::Ready(_) = this.inner.poll_frame(cx) {
                return ready;
            }
            let streams_end = &this.deadline.inner.streams_end;
            let wait = this
                .wait
                .get_or_insert_with(|| Box::pin(streams_end.clone().cancelled_owned()));
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        // Trailers after whole messages end a gRPC response properly, with a status.
        *this.ended = true;
        let mut trailers = http::HeaderMap::new();
        if shutting_down().add_header(&mut trailers).is_err() {
            tracing::warn!("could not encode the shutting-down status");
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection that fails, and so closes, once [`DrainDeadline::cut_connections`] is called.
pub struct Cuttable<IO> {
    io: IO,
    /// Boxed (once per connection) so that the connection stays `Unpin`, as the server needs.
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<IO> Cuttable<IO> {
    /// Whether the connection has been cut. Polling the token also registers the connection's task
    /// to be woken when it is cancelled, so that a connection waiting in a read is cut too.
    fn is_cut(&mut self, cx: &mut Context<'_>) -> bool {
        self.cut.as_mut().poll(cx).is_ready()
    }
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the server's drain deadline passed")
}

impl<IO: AsyncRead + Unpin> AsyncRead for Cuttable<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Cuttable<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.is_cut(cx) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Cuttable<IO> {
    type ConnectInfo = IO::ConnectInfo;

    /// The wrapped connection's, so that handlers still see the peer's address.
    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
