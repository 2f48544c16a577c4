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
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
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

/// The handles of the metrics recorded often, made once when the recorder is installed: recording
/// through a handle skips the registry's lookup of the name and labels. Before then (no admin
/// listener) there is nothing to record, and recording costs one atomic load.
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
    /// The metrics of each service, method and outcome seen so far, keyed by where their
    /// `'static` names live (service and method names are interned once per process) and the
    /// HTTP status. Made once per series and kept for the life of the process, as the recorder
    /// keeps their series.
    calls: RwLock<HashMap<CallKey, &'static CallMetrics>>,
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

/// The metrics of one service, method and outcome: the request count and the latency histogram.
pub struct CallMetrics {
    requests: Counter,
    /// Calls answered since the last scrape, added to `requests` when the metrics are read.
    answered: Tally,
    duration: Histogram,
}

impl CallMetrics {
    /// Records one call that took `elapsed`.
    pub fn record(&self, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        self.answered.add(1);
    }
}

/// The metrics of calls to `service`'s `method` that ended with `outcome`, once the recorder is
/// installed (`None` before: nothing is recorded). The same metrics on every call with the same
/// names and outcome, so a caller may keep them.
pub fn call_metrics(service: &'static str, method: &'static str, outcome: Outcome) -> Option<&'static CallMetrics> {
    let handles = handles()?;
    let key = (
        service.as_ptr() as usize,
        method.as_ptr() as usize,
        match outcome {
            Outcome::Grpc(name) => name.as_ptr() as usize,
            Outcome::Http(status) => usize::from(status),
        },
    );
    if let Some(found) = handles.calls.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Some(found);
    }
    let mut calls = handles.calls.write().unwrap_or_else(|e| e.into_inner());
    let made = calls.entry(key).or_insert_with(|| {
        let labels = vec![
            Label::new("service", service),
            Label::new("method", method),
            Label::new("code", outcome.label()),
        ];
        // Once per series, for the life of the process (as the recorder keeps the series).
        Box::leak(Box::new(CallMetrics {
            requests: counter!(RPC_REQUESTS, labels.clone()),
            answered: Tally::new(),
            duration: histogram!(RPC_DURATION, labels),
        }))
    });
    Some(*made)
}

/// Brings the counts kept apart ([`Tally`]) into the recorder: called before every scrape.
pub fn collect() {
    let Some(handles) = handles() else { return };
    handles.in_flight.set(IN_FLIGHT.sum() as f64);
    handles.cache_hits.increment(CACHE_HITS.take());
    handles.cache_misses.increment(CACHE_MISSES.take());
    for call in handles.calls.read().unwrap_or_else(|e| e.into_inner()).values() {
        call.requests.increment(call.answered.take());
    }
}

/// Calls in flight (their arrivals less their ends), read when the metrics are scraped.
static IN_FLIGHT: Tally = Tally::new();
static CACHE_HITS: Tally = Tally::new();
static CACHE_MISSES: Tally = Tally::new();

/// A count changed by every call, kept in one cache line per group of threads rather than one for
/// all: threads counting at once on different cores would otherwise pass that one line back and
/// forth on every call. Read, and for counters emptied, when the metrics are scraped; a count
/// added meanwhile lands in this scrape or the next, never in neither.
struct Tally {
    cells: [TallyCell; TALLY_CELLS],
}

/// One cell of a [`Tally`], alone in its cache lines (two, as adjacent lines are fetched in pairs).
#[repr(align(128))]
struct TallyCell(AtomicI64);

const TALLY_CELLS: usize = 8;

impl Tally {
    const fn new() -> Self {
        Self {
            cells: [const { TallyCell(AtomicI64::new(0)) }; TALLY_CELLS],
        }
    }

    fn add(&self, delta: i64) {
        self.cells[tally_cell()].0.fetch_add(delta, Ordering::Relaxed);
    }

    /// The count, without emptying it (a gauge).
    fn sum(&self) -> i64 {
        self.cells.iter().map(|cell| cell.0.load(Ordering::Relaxed)).sum()
    }

    /// The count since the last `take`, emptied (a counter's increase; never negative).
    fn take(&self) -> u64 {
        let taken: i64 = self.cells.iter().map(|cell| cell.0.swap(0, Ordering::Relaxed)).sum();
        u64::try_from(taken).unwrap_or(0)
    }
}

/// The cell this thread counts in: threads take the cells in turn as they first count.
fn tally_cell() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static CELL: usize = NEXT.fetch_add(1, Ordering::Relaxed) % TALLY_CELLS;
    }
    CELL.with(|cell| *cell)
}

/// The number of calls in flight changed by `delta`.
pub fn rpc_in_flight(delta: i64) {
    IN_FLIGHT.add(delta);
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
    if hit { &CACHE_HITS } else { &CACHE_MISSES }.add(1);
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
