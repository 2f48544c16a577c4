//! One log line per REST request, with its method, route, status and duration.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Runs the request in a span naming its method and route (the route pattern, never the query or
/// anything else that could carry a secret), and logs its status and duration.
pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!("rest", method = %request.method(), route = %route);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request answered");
        } else {
            tracing::debug!(status, elapsed_ms, "request answered");
        }
    });
    response
}
