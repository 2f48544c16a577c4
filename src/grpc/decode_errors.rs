//! Answers for requests whose message cannot be read, in our error model.
//!
//! tonic reads a call's request message before our handler runs, and answers by itself when it
//! cannot: INTERNAL when the bytes are not a valid message (gRPC's own code table says so, although
//! the fault is the client's) and OUT_OF_RANGE when the message is over the size limit, both without
//! a `google.rpc.ErrorInfo`. This layer rewrites those answers into INVALID_ARGUMENT with
//! `MALFORMED_MESSAGE`, and RESOURCE_EXHAUSTED (the code gRPC's table gives for a message over the
//! limit) with `MESSAGE_TOO_LARGE`.
//!
//! They are recognised as tonic's own: an answer with no message (its status in the headers) and no
//! `grpc-status-details-bin`. Every status our handlers return carries details, so none of theirs
//! is touched, and answers that carry a message pass untouched too.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tonic::body::Body;
use tonic::{Code, Status};
use tower_layer::Layer;
use tower_service::Service;

use super::error::{malformed_message, message_too_large};

/// Wraps the gRPC services so that undecodable and oversized request messages are answered in
/// our error model.
#[derive(Debug, Clone, Copy)]
pub struct DecodeErrorLayer {
    max_request_bytes: usize,
}

impl DecodeErrorLayer {
    /// `max_request_bytes` is the limit the services were given, named in the answer.
    pub fn new(max_request_bytes: usize) -> Self {
        Self { max_request_bytes }
    }
}

impl<S> Layer<S> for DecodeErrorLayer {
    type Service = DecodeErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrors {
            inner,
            max_request_bytes: self.max_request_bytes,
        }
    }
}

/// The service [`DecodeErrorLayer`] makes.
#[derive(Debug, Clone)]
pub struct DecodeErrors<S> {
    inner: S,
    max_request_bytes: usize,
}

impl<S, B> Service<http::Request<B>> for DecodeErrors<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Rewrite<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Rewrite {
            inner: self.inner.call(request),
            max_request_bytes: self.max_request_bytes,
        }
    }
}

pin_project! {
    /// The response future of [`DecodeErrors`].
    pub struct Rewrite<F> {
        #[pin]
        inner: F,
        max_request_bytes: usize,
    }
}

impl<F, E> Future for Rewrite<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(rewrite(response, *this.max_request_bytes)))
    }
}

fn rewrite(response: http::Response<Body>, max_request_bytes: usize) -> http::Response<Body> {
    let headers = response.headers();
    if headers.contains_key("grpc-status-details-bin") {
        return response;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return response;
    };
    let answer = match status.code() {
        Code::Internal => malformed_message(status.message()),
        Code::OutOfRange => message_too_large(max_request_bytes),
        _ => return response,
    };
    answer.into_http()
}
