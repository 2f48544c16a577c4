//! JSON for every gRPC call: `POST /json/<service>/<method>` with the request message in the
//! protobuf JSON mapping. The message is checked against the call's descriptor, encoded, and
//! handed in process to the gRPC service that answers the call, so that every rule and every field
//! conversion stays where it is written once. Errors come back as `google.rpc.Status` in JSON,
//! with the same details (`ErrorInfo`, `BadRequest`, `RetryInfo`) a gRPC client gets.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::OnceLock;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::transport::server::TcpConnectInfo;
use tonic::{Code, Status};
use tower_service::Service;

use super::RestState;
use super::agileapps::read_limited;
use super::credentials;
use super::error::{http_status, reason};

/// The [`Catalogue`] and the OpenAPI document made from it, built when first asked for. Most
/// deployments' clients speak gRPC and never call a JSON route: until one does, the server does
/// not hold the descriptor pool and the document (about 1.4 MiB of an idle server's memory). The
/// first JSON call or document request builds them (about 10 ms).
#[derive(Default)]
pub struct LazyCatalogue {
    catalogue: OnceLock<Result<Catalogue, String>>,
    openapi: OnceLock<Result<String, String>>,
}

impl LazyCatalogue {
    /// The catalogue, or why it could not be read (the descriptor sets built into the binary do
    /// not fit together: a defect of the build, which the unit tests catch).
    pub fn get(&self) -> Result<&Catalogue, &str> {
        let built = self.catalogue.get_or_init(|| {
            Catalogue::new().map_err(|e| {
                tracing::error!(
                    error = format!("{e:#}"),
                    "the JSON routes' descriptors could not be read"
                );
                format!("{e:#}")
            })
        });
        built.as_ref().map_err(String::as_str)
    }

    /// `/openapi.json`'s body.
    pub fn openapi(&self) -> Result<&str, &str> {
        let built = self
            .openapi
            .get_or_init(|| self.get().map(super::openapi::document).map_err(str::to_owned));
        built.as_deref().map_err(String::as_str)
    }
}

/// The calls the JSON routes answer, by `<service>/<method>`, with the descriptors of their
/// messages and of the error details.
pub struct Catalogue {
    pool: DescriptorPool,
    methods: BTreeMap<String, MethodDescriptor>,
}

impl Catalogue {
    /// Reads the contract's descriptor set (the one reflection serves) and google.rpc's.
    pub fn new() -> anyhow::Result<Self> {
        let contract = without_comments(crate::grpc::FILE_DESCRIPTOR_SET).context("reading the contract")?;
        let mut pool = DescriptorPool::from_file_descriptor_set(contract).context("reading the contract")?;
        let errors =
            without_comments(tonic_types::pb::FILE_DESCRIPTOR_SET).context("reading the google.rpc descriptors")?;
        // Files both sets import (google/protobuf/…) are in the pool already.
        let missing = errors
            .file
            .into_iter()
            .filter(|f| pool.get_file_by_name(f.name()).is_none())
            .collect::<Vec<_>>();
        pool.add_file_descriptor_protos(missing)
            .context("adding the google.rpc descriptors")?;
        let mut methods = BTreeMap::new();
        for name in crate::grpc::SERVICE_NAMES {
            let service = pool
                .get_service_by_name(name)
                .with_context(|| format!("{name} is not in the descriptor set"))?;
            for method in service.methods() {
                methods.insert(format!("{name}/{}", method.name()), method);
            }
        }
        Ok(Self { pool, methods })
    }

    /// Every call, in a stable order.
    pub fn methods(&self) -> impl Iterator<Item = &MethodDescriptor> {
        self.methods.values()
    }

    /// The `google.rpc.Status` message.
    pub fn status_message(&self) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name("google.rpc.Status")
    }
}

/// A descriptor set without its source information. Reflection serves the contract's comments;
/// the JSON routes need only names and types, and the comments' text and source positions would
/// otherwise be about half of the memory the pool keeps for as long as the server runs.
fn without_comments(encoded: &[u8]) -> Result<prost_types::FileDescriptorSet, prost::DecodeError> {
    let mut set = prost_types::FileDescriptorSet::decode(encoded)?;
    for file in &mut set.file {
        file.source_code_info = None;
    }
    Ok(set)
}

/// The route of every call.
pub fn route_of(method: &MethodDescriptor) -> String {
    format!("/json/{}/{}", method.parent_service().full_name(), method.name())
}

/// `POST /json/<service>/<method>`.
pub async fn call(
    State(state): State<RestState>,
    Path((service, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    let Ok(catalogue) = state.json.get() else {
        return refusal(
            &state,
            Code::Internal,
            crate::core::error::reason::INTERNAL,
            "the JSON routes are not available",
        );
    };
    let Some(method) = catalogue.methods.get(&format!("{service}/{method}")).cloned() else {
        return refusal(&state, Code::NotFound, reason::NO_SUCH_RESOURCE, "no such call");
    };
    let (parts, body) = request.into_parts();
    let essence = credentials::media_type(&parts.headers);
    // Only JSON is read; since a cross-site form cannot send it, a cookie is safe to honour here.
    if essence != "application/json" {
        return refusal_with(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            reason::UNSUPPORTED_CONTENT_TYPE,
            "send the request message as application/json",
        );
    }
    let Ok(body) = read_limited(body, state.max_request_bytes).await else {
        return refusal_with(
            &state,
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            reason::BODY_TOO_LARGE,
            &format!(
                "the body is larger than the {} bytes this server accepts",
                state.max_request_bytes
            ),
        );
    };
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    let message = match parse(method.input(), body) {
        Ok(message) => message,
        Err(why) => {
            return refusal(
                &state,
                Code::InvalidArgument,
                reason::MALFORMED_JSON,
                &format!("the body is not a {} in JSON: {why}", method.input().full_name()),
            );
        }
    };

    let mut grpc_request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("/{}/{}", method.parent_service().full_name(), method.name()))
        .header(CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Body::from(frame(&message.encode_to_vec())))
        .expect("a gRPC request from a known path");
    let headers = grpc_request.headers_mut();
    for value in parts.headers.get_all(AUTHORIZATION) {
        headers.append(AUTHORIZATION, value.clone());
    }
    if !headers.contains_key(AUTHORIZATION)
        && let Some(token) = credentials::cookie(&parts.headers, &state.cookies.name)
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(AUTHORIZATION, value);
    }
    if let Some(agent) = parts.headers.get(USER_AGENT) {
        headers.insert(USER_AGENT, agent.clone());
    }
    if let Some(peer) = parts.extensions.get::<TcpConnectInfo>() {
        grpc_request.extensions_mut().insert(peer.clone());
    }

    let mut grpc = state.grpc.clone();
    let Ok(response) = dispatch(&mut grpc, grpc_request).await;
    let (head, body) = response.into_parts();
    let (data, trailers) = match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            (collected.to_bytes(), trailers)
        }
        Err(status) => return status_response(&state, &status),
    };
    let status = Status::from_header_map(&head.headers)
        .or_else(|| trailers.as_ref().and_then(Status::from_header_map))
        .unwrap_or_else(|| Status::internal("the call ended without a status"));
    if status.code() != Code::Ok {
        return status_response(&state, &status);
    }
    let answer = unframe(&data).and_then(|payload| DynamicMessage::decode(method.output(), payload).ok());
    let Some(answer) = answer else {
        tracing::error!(call = %method.full_name(), "a gRPC answer could not be read back");
        return status_response(&state, &Status::internal("internal error"));
    };
    match serde_json::to_vec(&answer) {
        Ok(json) => (
            StatusCode::OK,
            [
                (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (http::header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            json,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "writing a JSON answer");
            status_response(&state, &Status::internal("internal error"))
        }
    }
}

async fn dispatch(
    grpc: &mut tonic::service::Routes,
    request: http::Request<Body>,
) -> Result<http::Response<tonic::body::Body>, Infallible> {
    std::future::poll_fn(|cx| Service::<http::Request<Body>>::poll_ready(grpc, cx)).await?;
    grpc.call(request).await
}

fn parse(descriptor: MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let message = DynamicMessage::deserialize(descriptor, &mut deserializer).map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(message)
}

/// A gRPC message frame: uncompressed, its length, the message.
fn frame(message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

/// The message of a unary answer's one uncompressed frame.
fn unframe(data: &[u8]) -> Option<&[u8]> {
    let (&compressed, rest) = data.split_first()?;
    let (length, message) = rest.split_at_checked(4)?;
    let length = u32::from_be_bytes(length.try_into().ok()?) as usize;
    (compressed == 0 && message.len() == length).then_some(message)
}

/// An error the JSON layer answers by itself, with an `ErrorInfo`.
fn refusal(state: &RestState, code: Code, reason: &str, message: &str) -> Response {
    refusal_with(state, http_status(code, StatusCode::BAD_REQUEST), code, reason, message)
}

fn refusal_with(state: &RestState, http: StatusCode, code: Code, reason: &str, message: &str) -> Response {
    use tonic_types::{ErrorDetails, StatusExt};
    let details = ErrorDetails::with_error_info(reason, crate::grpc::error::ERROR_DOMAIN, HashMap::new());
    let status = Status::with_error_details(code, message, details);
    let mut response = status_response(state, &status);
    *response.status_mut() = http;
    response
}

/// A status as `google.rpc.Status` JSON, with its details.
pub(super) fn status_response(state: &RestState, status: &Status) -> Response {
    let http = http_status(status.code(), StatusCode::BAD_REQUEST);
    let decoded = state
        .json
        .get()
        .ok()
        .and_then(Catalogue::status_message)
        .filter(|_| !status.details().is_empty())
        .and_then(|descriptor| DynamicMessage::decode(descriptor, status.details()).ok())
        .and_then(|message| serde_json::to_value(&message).ok());
    let body = decoded.unwrap_or_else(|| {
        serde_json::json!({
            "code": status.code() as i32,
            "message": status.message(),
        })
    });
    (
        http,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_built_when_first_asked_for_and_holds_every_call() {
        let lazy = LazyCatalogue::default();
        assert!(
            lazy.catalogue.get().is_none() && lazy.openapi.get().is_none(),
            "nothing built up front"
        );
        let catalogue = lazy.get().expect("the built-in descriptor sets fit together");
        for name in crate::grpc::SERVICE_NAMES {
            assert!(
                catalogue.methods().any(|m| m.parent_service().full_name() == name),
                "{name}"
            );
        }
        assert!(catalogue.status_message().is_some());
        let document: serde_json::Value = serde_json::from_str(lazy.openapi().unwrap()).unwrap();
        assert_eq!(
            document["paths"].as_object().unwrap().len(),
            catalogue.methods().count()
        );
    }
}
