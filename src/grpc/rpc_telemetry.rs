//! One tracing span and one set of metrics per call, for every service the server answers (and
//! for the REST layer's HTTP requests).
//!
//! The span `rpc` names the service, the method, the peer's address, the request id and, once
//! the answer ends and when spans are exported, its gRPC code (text logs have the code on the
//! debug line `call answered`). The request id is the caller's `x-request-id` when it looks
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
use crate::telemetry::{self, CallFields};

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
    /// The served gRPC method called, if it is one.
    known: Option<&'static Method>,
    grpc: bool,
    request_id: HeaderValue,
    span: Span,
    /// Set once the answer says how it ended.
    code: Option<Ended>,
}

/// How a call ended.
#[derive(Clone, Copy)]
enum Ended {
    /// A gRPC code (0 to 16; any other number is `UNKNOWN`, 2).
    Grpc(u8),
    /// A REST request's HTTP status.
    Http(u16),
}

const CANCELLED: Ended = Ended::Grpc(1);
const UNKNOWN: Ended = Ended::Grpc(2);

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Grpc(code) => f.write_str(code_name(code)),
            Self::Http(status) => write!(f, "{status}"),
        }
    }
}

impl Ended {
    fn outcome(self) -> Outcome {
        match self {
            Self::Grpc(code) => Outcome::Grpc(code_name(code)),
            Self::Http(status) => Outcome::Http(status),
        }
    }
}

impl Call {
    fn start<B>(request: &Request<B>) -> Self {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let known = if grpc {
            known_methods().get(request.uri().path())
        } else {
            None
        };
        let (service, method) = match known {
            Some(known) => (known.service, known.name),
            None if grpc => ("unknown", "unknown"),
            None => ("rest", http_method(request.method())),
        };
        let request_id = request_id(request.headers());
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        let span = telemetry::call_span(CallFields::new(service, method, peer, request_id.as_bytes()));
        metrics::rpc_in_flight(1);
        Self {
            started: Instant::now(),
            service,
            method,
            known,
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
            self.code = Some(Ended::Http(response.status().as_u16()));
        } else if let Some(code) = grpc_code(response.headers()) {
            self.code = Some(Ended::Grpc(code));
        }
        response.headers_mut().insert(
            http::header::HeaderName::from_static(REQUEST_ID),
            self.request_id.clone(),
        );
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        metrics::rpc_in_flight(-1);
        let ended = self.code.take().unwrap_or(CANCELLED);
        let elapsed = self.started.elapsed();
        // The span's own `code` is for an exported trace; written into the span for text logs
        // it would cost every call and show on no line (no line is logged in the span after
        // this one, which carries the code itself).
        if crate::telemetry::spans_exported() {
            match ended {
                Ended::Grpc(code) => self.span.record("code", code_name(code)),
                Ended::Http(status) => self.span.record("code", status),
            };
        }
        // With the span as parent rather than entered: entering costs every call, even while
        // the event is filtered out.
        tracing::debug!(
            parent: &self.span,
            code = %ended,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "call answered"
        );
        let found = match (self.known, ended) {
            (Some(known), Ended::Grpc(code)) => known.metrics(code),
            _ => metrics::call_metrics(self.service, self.method, ended.outcome()),
        };
        if let Some(call) = found {
            call.record(elapsed);
        }
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
                call.code = Some(UNKNOWN);
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
                            call.code = Some(Ended::Grpc(code));
                        }
                        *this.done = true;
                    }
                }
                Some(Err(_)) => {
                    if let Some(call) = this.call.as_mut() {
                        call.code = Some(UNKNOWN);
                    }
                    *this.done = true;
                }
                // A gRPC answer without a status is not one.
                None => {
                    if let Some(call) = this.call.as_mut() {
                        call.code = Some(UNKNOWN);
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

/// The gRPC code in `grpc-status`, if the headers carry one (`UNKNOWN` for a number that is
/// none).
fn grpc_code(headers: &HeaderMap) -> Option<u8> {
    let code = headers.get("grpc-status")?;
    let number: u32 = std::str::from_utf8(code.as_bytes()).ok()?.parse().ok()?;
    Some(u8::try_from(number).ok().filter(|&n| n < GRPC_CODES as u8).unwrap_or(2))
}

/// How many gRPC codes there are (0 to 16).
const GRPC_CODES: usize = 17;

/// The canonical name of a gRPC status code.
fn code_name(code: u8) -> &'static str {
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

/// A method the server serves.
struct Method {
    /// Its service's full name (`identity.v1.LoginService`).
    service: &'static str,
    /// Its own name (`Login`).
    name: &'static str,
    /// Its metrics for each gRPC code, found once and kept: a call finds its own without a
    /// lock or a lookup.
    metrics: [OnceLock<&'static metrics::CallMetrics>; GRPC_CODES],
}

impl Method {
    fn metrics(&self, code: u8) -> Option<&'static metrics::CallMetrics> {
        let slot = &self.metrics[usize::from(code)];
        if let Some(found) = slot.get() {
            return Some(found);
        }
        // Kept only once there is a recorder: before then there are no metrics to keep.
        let found = metrics::call_metrics(self.service, self.name, Outcome::Grpc(code_name(code)))?;
        Some(slot.get_or_init(|| found))
    }
}

/// Every method the server serves, by its path (`/identity.v1.LoginService/Login`): read once
/// from the descriptor sets served by reflection, so that a label can only ever be one of them.
fn known_methods() -> &'static HashMap<String, Method> {
    static METHODS: OnceLock<HashMap<String, Method>> = OnceLock::new();
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
                        let method = Method {
                            service: full,
                            name,
                            metrics: [const { OnceLock::new() }; GRPC_CODES],
                        };
                        methods.insert(format!("/{full}/{name}"), method);
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
        let names = |path| methods.get(path).map(|m: &Method| (m.service, m.name));
        assert_eq!(
            names("/identity.v1.SessionService/ValidateSession"),
            Some(("identity.v1.SessionService", "ValidateSession"))
        );
        assert_eq!(
            names("/grpc.health.v1.Health/Check"),
            Some(("grpc.health.v1.Health", "Check"))
        );
    }
}
