//! One tracing span and one set of metrics per call, for every service the server answers (and
//! for the REST layer's HTTP requests).
//!
//! The span `rpc` names the service, the method, the peer's address, the request id and, once
//! the answer ends, its gRPC code. The request id is the caller's `x-request-id` when it looks
//! like one (1 to 64 letters, digits, `.`, `:` or `-`; no `_`, so that none of identityd's
//! secrets, which all have a `…_` prefix, can pass as one) and a fresh UUID otherwise; either way
//! the answer carries it back in its `x-request-id` metadata. Nothing else of the request's
//! metadata is recorded: `authorization` and cookies never reach a span or a metric.
//!
//! A gRPC call's code is in its headers when it failed before answering (a trailers-only answer)
//! and otherwise in the trailers at the end of its body, so the metrics are recorded when the
//! answer's body ends, or when it is dropped unfinished (the client went away: `CANCELLED`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prost::Message;
use tonic::transport::server::TcpConnectInfo;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;

use crate::telemetry::metrics::{self, Outcome};

/// The metadata key of the request id, read from requests and written on answers.
pub const REQUEST_ID: &str = "x-request-id";

/// Adds the span and the metrics to every call.
#[derive(Clone, Copy, Default)]
pub struct RpcTelemetryLayer;

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetry { inner }
    }
}

/// The service [`RpcTelemetryLayer`] makes.
#[derive(Clone)]
pub struct RpcTelemetry<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for RpcTelemetry<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ObservedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let call = Call::start(&request);
        let future = call.span.in_scope(|| self.inner.call(request));
        ObservedResponse {
            inner: future,
            call: Some(call),
        }
    }
}

/// What is known of a call from its arrival to the end of its answer.
struct Call {
    started: Instant,
    service: &'static str,
    method: &'static str,
    grpc: bool,
    request_id: HeaderValue,
    span: Span,
    /// Set once the answer says how it ended.
    code: Option<Outcome>,
}

impl Call {
    fn start<B>(request: &Request<B>) -> Self {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let (service, method) = if grpc {
            known_methods()
                .get(request.uri().path())
                .copied()
                .unwrap_or(("unknown", "unknown"))
        } else {
            ("rest", http_method(request.method()))
        };
        let request_id = request_id(request.headers());
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        // Strings that need no escaping, which the text log writes at once (telemetry::log_fields).
        let span = tracing::info_span!(
            "rpc",
            service,
            method,
            peer = peer.map(tracing::field::display),
            request_id = request_id.to_str().unwrap_or_default(),
            code = tracing::field::Empty,
        );
        metrics::rpc_in_flight(1.0);
        Self {
            started: Instant::now(),
            service,
            method,
            grpc,
            request_id,
            span,
            code: None,
        }
    }

    /// Takes the code from the answer's head: an HTTP status, or the status of a trailers-only
    /// gRPC answer.
    fn answered<B>(&mut self, response: &mut Response<B>) {
        if !self.grpc {
            self.code = Some(Outcome::Http(response.status().as_u16()));
        } else if let Some(code) = grpc_code(response.headers()) {
            self.code = Some(Outcome::Grpc(code));
        }
        response.headers_mut().insert(
            http::header::HeaderName::from_static(REQUEST_ID),
            self.request_id.clone(),
        );
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        metrics::rpc_in_flight(-1.0);
        let code = self.code.take().unwrap_or(Outcome::Grpc("CANCELLED"));
        let elapsed = self.started.elapsed();
        match code {
            Outcome::Grpc(name) => self.span.record("code", name),
            Outcome::Http(status) => self.span.record("code", status),
        };
        // With the span as parent rather than entered: entering costs every call, even while
        // the event is filtered out.
        tracing::debug!(parent: &self.span, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "call answered");
        metrics::rpc_answered(self.service, self.method, code, elapsed);
    }
}

pin_project! {
    /// The response future of [`RpcTelemetry`]: polls the handler inside the call's span.
    pub struct ObservedResponse<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, B, E> Future for ObservedResponse<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ObservedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let call = this.call.as_ref().expect("polled after completion");
            let _entered = call.span.enter();
            this.inner.poll(cx)
        };
        let result = std::task::ready!(polled);
        let mut call = this.call.take().expect("polled after completion");
        match result {
            Ok(mut response) => {
                call.answered(&mut response);
                let done = call.code.is_some();
                Poll::Ready(Ok(response.map(|inner| ObservedBody {
                    inner,
                    call: Some(call),
                    done,
                })))
            }
            Err(e) => {
                call.code = Some(Outcome::Grpc("UNKNOWN"));
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// An answer's body that records the call when it ends (or is dropped unfinished).
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
        // Whether the code is known already: the body is then only passed through.
        done: bool,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = std::task::ready!(this.inner.as_mut().poll_frame(cx));
        if !*this.done {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(code) = frame.trailers_ref().and_then(grpc_code) {
                        if let Some(call) = this.call.as_mut() {
                            call.code = Some(Outcome::Grpc(code));
                        }
                        *this.done = true;
                    }
                }
                Some(Err(_)) => {
                    if let Some(call) = this.call.as_mut() {
                        call.code = Some(Outcome::Grpc("UNKNOWN"));
                    }
                    *this.done = true;
                }
                // A gRPC answer without a status is not one.
                None => {
                    if let Some(call) = this.call.as_mut() {
                        call.code = Some(Outcome::Grpc("UNKNOWN"));
                    }
                    *this.done = true;
                }
            }
        }
        if frame.is_none() || *this.done && this.inner.is_end_stream() {
            // Recorded now rather than when the body is dropped, which may be later.
            this.call.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The caller's request id if it is acceptable as one, or a fresh one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID)
        .filter(|value| acceptable_request_id(value.as_bytes()))
        .cloned()
        .unwrap_or_else(|| {
            // A random (v4) UUID from the thread's generator, without a system call per call.
            let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut text).as_bytes())
                .expect("a UUID is a header value")
        })
}

/// 1 to 64 of `A-Z a-z 0-9 . : -`: enough for UUIDs and trace ids, and never one of our secrets
/// (each has an `_` in its prefix) nor a JWT (longer, and with `_` or base64 beyond the set).
fn acceptable_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-'))
}

/// The name of the gRPC code in `grpc-status`, if the headers carry one.
fn grpc_code(headers: &HeaderMap) -> Option<&'static str> {
    let code = headers.get("grpc-status")?;
    let number: i32 = std::str::from_utf8(code.as_bytes()).ok()?.parse().ok()?;
    Some(code_name(number))
}

/// The canonical name of a gRPC status code.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// The HTTP method as a label: the standard ones by name, anything else as `OTHER`.
fn http_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Every method the server serves, by its path (`/identity.v1.LoginService/Login`), with its
/// service's full name and its own: read once from the descriptor sets served by reflection, so
/// that a label can only ever be one of them.
fn known_methods() -> &'static HashMap<String, (&'static str, &'static str)> {
    static METHODS: OnceLock<HashMap<String, (&'static str, &'static str)>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let sets = [
            super::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut methods = HashMap::new();
        for set in sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                tracing::error!("a served descriptor set does not decode; its calls are labelled unknown");
                continue;
            };
            for file in set.file {
                let package = file.package.unwrap_or_default();
                for service in file.service {
                    let full = match package.as_str() {
                        "" => service.name().to_owned(),
                        package => format!("{package}.{}", service.name()),
                    };
                    // Once per process: the names live as long as the metrics that carry them.
                    let full: &'static str = Box::leak(full.into_boxed_str());
                    for method in service.method {
                        let name: &'static str = Box::leak(method.name().to_owned().into_boxed_str());
                        methods.insert(format!("/{full}/{name}"), (full, name));
                    }
                }
            }
        }
        methods
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_that_could_be_secrets_are_replaced() {
        assert!(acceptable_request_id(b"0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(acceptable_request_id(b"trace:1.2"));
        assert!(!acceptable_request_id(b""));
        assert!(!acceptable_request_id(b"idsess_abc"));
        assert!(!acceptable_request_id(b"idat_abc"));
        assert!(!acceptable_request_id(b"Bearer abc"));
        assert!(!acceptable_request_id(&[b'a'; 65]));
    }

    #[test]
    fn every_served_method_is_known_by_its_path() {
        let methods = known_methods();
        assert_eq!(
            methods.get("/identity.v1.SessionService/ValidateSession"),
            Some(&("identity.v1.SessionService", "ValidateSession"))
        );
        assert_eq!(
            methods.get("/grpc.health.v1.Health/Check"),
            Some(&("grpc.health.v1.Health", "Check"))
        );
    }
}
