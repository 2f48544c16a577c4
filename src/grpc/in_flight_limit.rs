//! The server's limit of calls in flight: a call beyond it is refused at once with
//! RESOURCE_EXHAUSTED, `TOO_MANY_CALLS` and a `RetryInfo`, rather than queued without bound.
//!
//! A call is in flight from its arrival until its answer's body ends (a stream counts for as long
//! as it is open). Health checks are never refused: a probe must still learn that the server
//! lives when it is busy.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_layer::Layer;
use tower_service::Service;

use super::error::too_many_calls;
use crate::telemetry::metrics;

/// The path prefix of the calls never refused.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// Refuses calls beyond a limit; no limit with 0.
#[derive(Clone)]
pub struct InFlightLimitLayer {
    permits: Option<Arc<Semaphore>>,
    limit: usize,
}

impl InFlightLimitLayer {
    pub fn new(limit: usize) -> Self {
        Self {
            permits: (limit > 0).then(|| Arc::new(Semaphore::new(limit))),
            limit,
        }
    }
}

impl<S> Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimit {
            inner,
            permits: self.permits.clone(),
            limit: self.limit,
        }
    }
}

/// The service [`InFlightLimitLayer`] makes.
#[derive(Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    permits: Option<Arc<Semaphore>>,
    limit: usize,
}

impl<S, B, ResBody> Service<Request<B>> for InFlightLimit<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<LimitedBody<ResBody>>;
    type Error = S::Error;
    type Future = LimitedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Taken here, when the call arrives, and not when its future is first polled.
        let permit = match &self.permits {
            Some(permits) if !request.uri().path().starts_with(HEALTH) => match permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    metrics::rpc_overloaded();
                    return LimitedResponse::Refused { limit: self.limit };
                }
            },
            _ => None,
        };
        LimitedResponse::Admitted {
            inner: self.inner.call(request),
            permit,
        }
    }
}

pin_project! {
    /// The response future of [`InFlightLimit`].
    #[project = LimitedResponseProj]
    pub enum LimitedResponse<F> {
        Admitted { #[pin] inner: F, permit: Option<OwnedSemaphorePermit> },
        Refused { limit: usize },
    }
}

impl<F, B, E> Future for LimitedResponse<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<LimitedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            LimitedResponseProj::Admitted { inner, permit } => {
                let response = std::task::ready!(inner.poll(cx))?;
                let permit = permit.take();
                Poll::Ready(Ok(response.map(|inner| LimitedBody::Admitted { inner, permit })))
            }
            LimitedResponseProj::Refused { limit } => {
                // A trailers-only answer: the status in the headers and an empty body.
                let (parts, _) = too_many_calls(*limit).into_http::<()>().into_parts();
                Poll::Ready(Ok(Response::from_parts(parts, LimitedBody::Refused)))
            }
        }
    }
}

pin_project! {
    /// An answer's body, holding its call's place under the limit until it ends.
    #[project = LimitedBodyProj]
    pub enum LimitedBody<B> {
        Admitted { #[pin] inner: B, permit: Option<OwnedSemaphorePermit> },
        Refused,
    }
}

impl<B: Body> Body for LimitedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.project() {
            LimitedBodyProj::Admitted { inner, permit } => {
                let frame = std::task::ready!(inner.poll_frame(cx));
                let trailers = matches!(&frame, Some(Ok(f)) if f.is_trailers());
                if frame.is_none() || trailers {
                    // The call is over once its status is out: its place is free for the next.
                    permit.take();
                }
                Poll::Ready(frame)
            }
            LimitedBodyProj::Refused => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Admitted { inner, .. } => inner.is_end_stream(),
            Self::Refused => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Admitted { inner, .. } => inner.size_hint(),
            Self::Refused => SizeHint::with_exact(0),
        }
    }
}
