//! The admin listener: plain HTTP/1.1 on an address of its own (off unless one is configured),
//! for the operator's tools rather than callers.
//!
//! - `GET /metrics`: every metric in the Prometheus text format.
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 while the gRPC health status is SERVING (the store answers and no drain
//!   has begun), 503 otherwise (readiness).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How often the recorder's histograms are trimmed between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// What the admin listener answers from.
#[derive(Clone)]
pub struct AdminState {
    /// Renders the metrics.
    pub metrics: PrometheusHandle,
    /// Whether the service is ready, as the gRPC health status says.
    pub ready: watch::Receiver<bool>,
    /// Sets the gauges that are read rather than counted (the database pools) before a scrape.
    pub before_scrape: Arc<dyn Fn() + Send + Sync>,
}

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: AdminState) {
    let upkeep = tokio::spawn({
        let metrics = state.metrics.clone();
        async move {
            let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        }
    });
    let _upkeep = AbortOnDrop(upkeep);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: accept failed");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "admin connection ended with an error");
            }
        });
    }
}

fn answer(state: &AdminState, request: &Request<Incoming>) -> Response<String> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match request.uri().path() {
        "/metrics" => {
            (state.before_scrape)();
            crate::telemetry::metrics::collect();
            let mut response = text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if *state.ready.borrow() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::NOT_FOUND, "not found: /metrics, /healthz or /readyz\n"),
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<String> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
}

/// Binds the admin address; the caller serves on it with [`serve`].
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the admin address {address}"))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
