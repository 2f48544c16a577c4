//! The REST translation layer (feature `rest`), served on the gRPC port next to tonic's routes.
//!
//! Two dialects, both only translating: the AgileApps session resources under
//! `/networking/rest/` (XML bodies, the session in a cookie or a bearer header) call the core
//! directly, as the gRPC services do; `/json/<service>/<method>` takes any RPC's request in the
//! protobuf JSON mapping and hands it, in process, to the very gRPC service that answers it, so
//! that no rule and no field is written twice. `/openapi.json` describes the JSON routes, and
//! `/.well-known/jwks.json` serves the session-JWT keys.

mod agileapps;
mod credentials;
mod error;
mod json;
mod jwks;
mod logging;
mod openapi;
mod xml;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};
use tonic::service::Routes;

use crate::core::Identity;

pub use credentials::CookieSettings;

/// Everything a REST handler needs: the core, the gRPC routes the JSON dialect dispatches to, and
/// the limits and cookie settings of the configuration.
#[derive(Clone)]
pub(crate) struct RestState {
    identity: Identity,
    grpc: Routes,
    cookies: Arc<CookieSettings>,
    max_request_bytes: usize,
    json: Arc<json::LazyCatalogue>,
}

/// The REST routes over `identity`, dispatching JSON calls to `grpc` (the routes of the four
/// identity services), refusing bodies over `max_request_bytes`.
pub fn router(identity: Identity, grpc: Routes, cookies: CookieSettings, max_request_bytes: usize) -> Router {
    let state = RestState {
        identity,
        grpc,
        cookies: Arc::new(cookies),
        max_request_bytes,
        json: Arc::default(),
    };
    let agileapps = Router::new()
        .route("/networking/rest/login", post(agileapps::login))
        .route(
            "/networking/rest/login/customerSupport",
            post(agileapps::login_as_customer_support),
        )
        .route("/networking/rest/login/proxyLogin", post(agileapps::proxy_login))
        .route(
            "/networking/rest/login/proxyLogin/switchBack",
            get(agileapps::switch_back),
        )
        .route(
            "/networking/rest/logout",
            get(agileapps::logout).post(agileapps::logout),
        )
        .route("/networking/rest/user/isSessionValid", get(agileapps::is_session_valid))
        .route("/networking/rest/user/info", get(agileapps::user_info))
        .route("/networking/rest/user/password", post(agileapps::change_password))
        .route("/networking/rest/{*rest}", any(agileapps::not_found));
    Router::new()
        .merge(agileapps.with_state(state.clone()))
        .route("/json/{service}/{method}", post(json::call).with_state(state.clone()))
        .route("/.well-known/jwks.json", get(jwks::jwks).with_state(state.clone()))
        .route("/openapi.json", get(openapi::serve).with_state(state))
        .layer(axum::middleware::from_fn(logging::log_request))
}
