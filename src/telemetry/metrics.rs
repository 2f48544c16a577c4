//! Every metric the service records, named once here, through the `metrics` facade.
//!
//! Until [`install`] puts the Prometheus recorder in place (when an admin address is configured),
//! recording costs next to nothing: the facade's calls go to a no-op recorder. The recorder is
//! global to the process, so servers embedded in one process (as in the tests) share it.
//!
//! No label carries anything a caller chose freely: RPC names are those of the served contract
//! (anything else is `unknown`), codes are gRPC or HTTP status codes, and no label holds a
//! secret, a user, a tenant or an address.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, SharedString, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Calls answered, by `service`, `method` and `code` (the gRPC code's name, or the HTTP status for
/// a REST request).
pub const RPC_REQUESTS: &str = "identityd_rpc_requests_total";
/// Time from a call's arrival to the end of its answer, by `service`, `method` and `code`.
pub const RPC_DURATION: &str = "identityd_rpc_duration_seconds";
/// Calls in flight.
pub const RPC_IN_FLIGHT: &str = "identityd_rpc_in_flight";
/// Password hashes admitted: running on a hashing thread or waiting for one.
pub const HASHING_ADMITTED: &str = "identityd_hashing_admitted";
/// Password hashes waiting for a hashing thread (the queue).
pub const HASHING_QUEUED: &str = "identityd_hashing_queued";
/// Password hashes refused because the queue was full (answered RESOURCE_EXHAUSTED).
pub const HASHING_REJECTED: &str = "identityd_hashing_rejected_total";
/// ValidateSession lookups answered from the validation cache.
pub const VALIDATION_CACHE_HITS: &str = "identityd_validation_cache_hits_total";
/// ValidateSession lookups the validation cache could not answer (they go to the store).
pub const VALIDATION_CACHE_MISSES: &str = "identityd_validation_cache_misses_total";
/// Database pool connections, by `pool` (`primary`; `reader` for SQLite's read-only connections
/// beside its one writer) and `state` (`idle`, `in_use`), as of the scrape.
pub const DB_POOL_CONNECTIONS: &str = "identityd_db_pool_connections";
/// Most connections a database pool opens, by `pool`.
pub const DB_POOL_MAX: &str = "identityd_db_pool_max_connections";
/// Round trip of the health probe's query (`SELECT 1`), every 2 s.
pub const DB_PING_DURATION: &str = "identityd_db_ping_duration_seconds";
/// Time of each statement run on its own, outside a write transaction (the reads — sessions,
/// users, tokens, lists —, the ping and the sweeps' deletes), from asking the pool for a
/// connection to the last row, pool wait included.
pub const DB_STATEMENT_DURATION: &str = "identityd_db_statement_duration_seconds";
/// Sessions opened, by `kind` (the session kind: `password`, `access_token`, `sso`,
/// `service_account`, `customer_support`, `proxy`).
pub const SESSIONS_OPENED: &str = "identityd_sessions_opened_total";
/// Sessions ended by a logout, a revocation of sessions (RevokeSession, the end of an
/// impersonation, ending a user's sessions); not those ended with a revoked token or a disabled
/// user, nor expiry.
pub const SESSIONS_ENDED: &str = "identityd_sessions_ended_total";
/// Calls refused because the server's limit of calls in flight was reached.
pub const RPC_OVERLOADED: &str = "identityd_rpc_overloaded_total";

/// Latency buckets, in seconds, for every `_seconds` histogram: validations take well under a
/// millisecond from the cache, logins tens of milliseconds of hashing.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the Prometheus recorder for the whole process, once, and answers its handle (the same
/// one on every call).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    // A lock rather than a `OnceLock`: two servers starting at once must not both install one.
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = &*installed {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .install_recorder()?;
    describe();
    let _ = HANDLES.set(make_handles());
    *installed = Some(handle.clone());
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(RPC_REQUESTS, "Calls answered, by service, method and code");
    describe_histogram!(RPC_DURATION, Unit::Seconds, "Call latency, by service, method and code");
    describe_gauge!(RPC_IN_FLIGHT, "Calls in flight");
    describe_counter!(RPC_OVERLOADED, "Calls refused at the limit of calls in flight");
    describe_gauge!(HASHING_ADMITTED, "Password hashes running or waiting");
    describe_gauge!(HASHING_QUEUED, "Password hashes waiting for a hashing thread");
    describe_counter!(HASHING_REJECTED, "Password hashes refused: the queue was full");
    describe_counter!(VALIDATION_CACHE_HITS, "Session validations answered from memory");
    describe_counter!(VALIDATION_CACHE_MISSES, "Session validations read from the store");
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections by state");
    describe_gauge!(DB_POOL_MAX, "Most connections a database pool opens");
    describe_histogram!(
        DB_PING_DURATION,
        Unit::Seconds,
        "Round trip of the health probe's query"
    );
    describe_histogram!(
        DB_STATEMENT_DURATION,
        Unit::Seconds,
        "Time of a statement outside a write transaction, pool wait included"
    );
    describe_counter!(SESSIONS_OPENED, "Sessions opened, by kind of opening");
    describe_counter!(SESSIONS_ENDED, "Sessions ended by a logout or a revocation");
}

/// How a call ended: a gRPC code's name, or an HTTP status (a REST request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Grpc(&'static str),
    Http(u16),
}

impl Outcome {
    fn label(self) -> SharedString {
        match self {
            Self::Grpc(name) => name.into(),
            Self::Http(status) => status.to_string().into(),
        }
    }
}

/// The handles of the metrics recorded on every call, made once when the recorder is installed:
/// recording through a handle skips the registry's lookup of the name and labels. Before then
/// (no admin listener) there is nothing to record, and recording costs one atomic load.
struct Handles {
    in_flight: Gauge,
    overloaded: Counter,
    hashing_admitted: Gauge,
    hashing_queued: Gauge,
    hashing_rejected: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
    ping: Histogram,
    statement: Histogram,
    sessions_ended: Counter,
    /// Per service, method and outcome, keyed by where their `'static` names live (service and
    /// method names are interned once per process) and the HTTP status.
    calls: RwLock<HashMap<CallKey, (Counter, Histogram)>>,
}

/// Where a call's service and method names live, and its gRPC code's name (where it lives) or
/// HTTP status.
type CallKey = (usize, usize, usize);

static HANDLES: OnceLock<Handles> = OnceLock::new();

fn handles() -> Option<&'static Handles> {
    HANDLES.get()
}

fn make_handles() -> Handles {
    Handles {
        in_flight: gauge!(RPC_IN_FLIGHT),
        overloaded: counter!(RPC_OVERLOADED),
        hashing_admitted: gauge!(HASHING_ADMITTED),
        hashing_queued: gauge!(HASHING_QUEUED),
        hashing_rejected: counter!(HASHING_REJECTED),
        cache_hits: counter!(VALIDATION_CACHE_HITS),
        cache_misses: counter!(VALIDATION_CACHE_MISSES),
        ping: histogram!(DB_PING_DURATION),
        statement: histogram!(DB_STATEMENT_DURATION),
        sessions_ended: counter!(SESSIONS_ENDED),
        calls: RwLock::new(HashMap::new()),
    }
}

/// One call answered.
pub fn rpc_answered(service: &'static str, method: &'static str, outcome: Outcome, elapsed: Duration) {
    let Some(handles) = handles() else { return };
    let key = (
        service.as_ptr() as usize,
        method.as_ptr() as usize,
        match outcome {
            Outcome::Grpc(name) => name.as_ptr() as usize,
            Outcome::Http(status) => usize::from(status),
        },
    );
    let found = handles
        .calls
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let (requests, duration) = found.unwrap_or_else(|| {
        let labels = vec![
            Label::new("service", service),
            Label::new("method", method),
            Label::new("code", outcome.label()),
        ];
        let made = (counter!(RPC_REQUESTS, labels.clone()), histogram!(RPC_DURATION, labels));
        let mut calls = handles.calls.write().unwrap_or_else(|e| e.into_inner());
        calls.entry(key).or_insert(made).clone()
    });
    duration.record(elapsed.as_secs_f64());
    requests.increment(1);
}

/// The number of calls in flight changed by `delta`.
pub fn rpc_in_flight(delta: f64) {
    if let Some(handles) = handles() {
        handles.in_flight.increment(delta);
    }
}

/// A call refused at the server's limit of calls in flight.
pub fn rpc_overloaded() {
    if let Some(handles) = handles() {
        handles.overloaded.increment(1);
    }
}

/// Hashes admitted (running or waiting) changed by `delta`.
pub fn hashing_admitted(delta: f64) {
    if let Some(handles) = handles() {
        handles.hashing_admitted.increment(delta);
    }
}

/// Hashes waiting for a thread changed by `delta`.
pub fn hashing_queued(delta: f64) {
    if let Some(handles) = handles() {
        handles.hashing_queued.increment(delta);
    }
}

/// A hash refused: the queue was full.
pub fn hashing_rejected() {
    if let Some(handles) = handles() {
        handles.hashing_rejected.increment(1);
    }
}

/// A validation answered from the cache (`hit`) or not.
pub fn validation_cache(hit: bool) {
    if let Some(handles) = handles() {
        if hit {
            handles.cache_hits.increment(1);
        } else {
            handles.cache_misses.increment(1);
        }
    }
}

/// A database pool's connections as of now.
pub fn db_pool(pool: &'static str, open: u32, idle: usize, max: u32) {
    let idle = idle.min(open as usize);
    gauge!(DB_POOL_CONNECTIONS, "pool" => pool, "state" => "idle").set(idle as f64);
    gauge!(DB_POOL_CONNECTIONS, "pool" => pool, "state" => "in_use").set((open as usize - idle) as f64);
    gauge!(DB_POOL_MAX, "pool" => pool).set(f64::from(max));
}

/// The health probe's query took `elapsed`.
pub fn db_ping(elapsed: Duration) {
    if let Some(handles) = handles() {
        handles.ping.record(elapsed.as_secs_f64());
    }
}

/// A statement outside a write transaction took `elapsed`.
pub fn db_statement(elapsed: Duration) {
    if let Some(handles) = handles() {
        handles.statement.record(elapsed.as_secs_f64());
    }
}

/// A session of `kind` opened.
pub fn session_opened(kind: &'static str) {
    counter!(SESSIONS_OPENED, "kind" => kind).increment(1);
}

/// `count` sessions ended by a logout or a revocation.
pub fn sessions_ended(count: u64) {
    if let Some(handles) = handles()
        && count > 0
    {
        handles.sessions_ended.increment(count);
    }
}
