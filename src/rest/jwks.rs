//! `GET /.well-known/jwks.json`: the public keys session JWTs are signed with, as a JWK Set
//! (RFC 7517), for verifiers that fetch keys over HTTP rather than calling `GetJwks`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

use super::RestState;
use super::json::status_response;

/// A key is published at least five minutes before it signs (the shortest publish-ahead the
/// configuration allows), so a verifier that keeps this answer no longer than that has every key
/// before it meets a JWT signed with it.
const CACHE_FOR: &str = "public, max-age=300";

pub async fn jwks(State(state): State<RestState>) -> Response {
    match state.identity.jwks().await {
        Ok(jwks) => (
            [
                (CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json")),
                (CACHE_CONTROL, HeaderValue::from_static(CACHE_FOR)),
            ],
            jwks.to_json(),
        )
            .into_response(),
        Err(e) => status_response(&state, &crate::grpc::error::to_status(e)),
    }
}
