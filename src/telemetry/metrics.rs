//! Every metric the service records, named once here, through the `metrics` facade.
//!
//! Until [`install`] puts the Prometheus recorder in place (when an admin address is configured),
//! recording costs next to nothing: the facade's calls go to a no-op recorder. The recorder is
//! global to the process, so servers embedded in one process (as in the tests) share it.
//!
//! No label carries anything a caller chose freely: RPC names are those of the served contract
//! (anything else is `unknown`), codes are gRPC or HTTP status codes, and no label holds a
//! secret, a user, a tenant or an address.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Label, SharedString, counter, gauge, histogram};
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
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
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
    describe_counter!(SESSIONS_OPENED, "Sessions opened, by kind of opening");
    describe_counter!(SESSIONS_ENDED, "Sessions ended by a logout or a revocation");
}

/// One call answered.
pub fn rpc_answered(service: &'static str, method: &'static str, code: SharedString, elapsed: Duration) {
    let labels = vec![
        Label::new("service", service),
        Label::new("method", method),
        Label::new("code", code),
    ];
    histogram!(RPC_DURATION, labels.clone()).record(elapsed.as_secs_f64());
    counter!(RPC_REQUESTS, labels).increment(1);
}

/// The number of calls in flight changed by `delta`.
pub fn rpc_in_flight(delta: f64) {
    gauge!(RPC_IN_FLIGHT).increment(delta);
}

/// A call refused at the server's limit of calls in flight.
pub fn rpc_overloaded() {
    counter!(RPC_OVERLOADED).increment(1);
}

/// Hashes admitted (running or waiting) changed by `delta`.
pub fn hashing_admitted(delta: f64) {
    gauge!(HASHING_ADMITTED).increment(delta);
}

/// Hashes waiting for a thread changed by `delta`.
pub fn hashing_queued(delta: f64) {
    gauge!(HASHING_QUEUED).increment(delta);
}

/// A hash refused: the queue was full.
pub fn hashing_rejected() {
    counter!(HASHING_REJECTED).increment(1);
}

/// A validation answered from the cache (`hit`) or not.
pub fn validation_cache(hit: bool) {
    if hit {
        counter!(VALIDATION_CACHE_HITS).increment(1);
    } else {
        counter!(VALIDATION_CACHE_MISSES).increment(1);
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
    histogram!(DB_PING_DURATION).record(elapsed.as_secs_f64());
}

/// A session of `kind` opened.
pub fn session_opened(kind: &'static str) {
    counter!(SESSIONS_OPENED, "kind" => kind).increment(1);
}

/// `count` sessions ended by a logout or a revocation.
pub fn sessions_ended(count: u64) {
    if count > 0 {
        counter!(SESSIONS_ENDED).increment(count);
    }
}
