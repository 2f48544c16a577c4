//! Runs a scenario: opens connections, prepares credentials, drives calls from many workers, and
//! gathers what they measured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use identityd::grpc::pb;
use identityd::grpc::pb::access_token_service_client::AccessTokenServiceClient;
use identityd::grpc::pb::login_service_client::LoginServiceClient;
use identityd::grpc::pb::session_service_client::SessionServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::cli::{RunArgs, Scenario};
use crate::stats::{Latencies, Load, Report};

/// What one run measured: the scenario, and the login storm beside it when there was one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOutcome {
    pub report: Report,
    pub storm: Option<Report>,
    /// The mass revocation made during the measurement, when one was asked for.
    pub revocation: Option<Revocation>,
    /// Resident memory of the server process at the end, in KiB, when its pid was given.
    pub server_rss_kib: Option<u64>,
}

/// A mass revocation made during a run: one user's other sessions all ended by one call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Revocation {
    pub user: String,
    /// The server the call went to.
    pub target: String,
    /// Sessions the call ended.
    pub sessions: u64,
    /// When the call was made, in seconds after the measurement began.
    pub at_seconds: f64,
    /// How long the call took.
    pub call_ms: f64,
}

impl Revocation {
    /// One line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "revocation: {} sessions of {} ended through {} at +{:.1} s (the call took {:.1} ms)",
            self.sessions, self.user, self.target, self.at_seconds, self.call_ms
        )
    }
}

/// The revoking user, logged in on the server the revocation goes to.
struct PreparedRevocation {
    user: String,
    target: String,
    sessions: SessionServiceClient<Channel>,
    bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl PreparedRevocation {
    async fn new(args: &RunArgs, channels: &[Channel]) -> anyhow::Result<Option<Self>> {
        let Some(user) = &args.revoke_user else {
            return Ok(None);
        };
        let target = args.revoke_target.clone().unwrap_or_else(|| args.target.clone());
        let channel = match &args.revoke_target {
            Some(other) => connect(other, 1).await?.remove(0),
            None => channels[0].clone(),
        };
        let session = login(&channel, user, &args.revoke_password)
            .await
            .with_context(|| format!("logging in as {user} to revoke its sessions"))?;
        Ok(Some(Self {
            user: user.clone(),
            target,
            sessions: SessionServiceClient::new(channel),
            bearer: format!("Bearer {session}").parse()?,
        }))
    }

    /// Ends every session of the user but the one it logged in with.
    async fn revoke(mut self, measuring_since: Instant) -> anyhow::Result<Revocation> {
        let mut request = tonic::Request::new(pb::RevokeMyOtherSessionsRequest {});
        request.metadata_mut().insert("authorization", self.bearer.clone());
        let at = measuring_since.elapsed();
        let start = Instant::now();
        let revoked = self
            .sessions
            .revoke_my_other_sessions(request)
            .await
            .context("revoking the sessions")?
            .into_inner();
        Ok(Revocation {
            user: self.user,
            target: self.target,
            sessions: revoked.revoked_count as u64,
            at_seconds: at.as_secs_f64(),
            call_ms: start.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

/// Credentials the calls use.
struct Prepared {
    sessions: Vec<String>,
    access_token: Option<String>,
    password: String,
}

/// One kind of call.
#[derive(Clone, Copy)]
enum Call {
    Health,
    Validate,
    Whoami,
    LoginPassword,
    LoginToken,
    RestValidate,
}

impl Call {
    /// The call a scenario makes as its `n`th request.
    fn nth(scenario: Scenario, n: u64) -> Call {
        match scenario {
            Scenario::Health => Call::Health,
            Scenario::Validate => Call::Validate,
            Scenario::Whoami => Call::Whoami,
            Scenario::LoginPassword => Call::LoginPassword,
            Scenario::LoginToken => Call::LoginToken,
            Scenario::RestValidate => Call::RestValidate,
            Scenario::Mixed => match n % 100 {
                0..90 => Call::Validate,
                90..98 => Call::Whoami,
                _ => Call::LoginPassword,
            },
        }
    }
}

struct Clients {
    health: HealthClient<Channel>,
    login: LoginServiceClient<Channel>,
    sessions: SessionServiceClient<Channel>,
    rest: Rest,
}

/// The REST layer of the same server, over HTTP/1.1.
#[derive(Clone)]
struct Rest {
    http: reqwest::Client,
    is_session_valid: Arc<str>,
}

impl Rest {
    fn new(target: &str) -> anyhow::Result<Self> {
        Ok(Rest {
            http: reqwest::Client::builder().tcp_nodelay(true).build()?,
            is_session_valid: format!("{}/networking/rest/user/isSessionValid", target.trim_end_matches('/')).into(),
        })
    }

    /// Whether the server answers that `session` is valid; an error is the HTTP status.
    async fn is_session_valid(&self, session: &str) -> Result<bool, tonic::Code> {
        let response = self
            .http
            .get(&*self.is_session_valid)
            .header("authorization", format!("Bearer {session}"))
            .send()
            .await
            .map_err(|_| tonic::Code::Unavailable)?;
        if !response.status().is_success() {
            return Err(tonic::Code::Unknown);
        }
        let body = response.bytes().await.map_err(|_| tonic::Code::Unavailable)?;
        let valid = b"<is_session_valid>true</is_session_valid>";
        Ok(body.windows(valid.len()).any(|w| w == valid))
    }
}

impl Clients {
    fn new(channel: Channel, rest: Rest) -> Self {
        Clients {
            health: HealthClient::new(channel.clone()),
            login: LoginServiceClient::new(channel.clone()),
            sessions: SessionServiceClient::new(channel),
            rest,
        }
    }

    async fn call(&mut self, call: Call, n: u64, user: &str, prepared: &Prepared) -> Result<(), tonic::Code> {
        let session = || prepared.sessions[(n as usize) % prepared.sessions.len()].clone();
        let result = match call {
            Call::Health => self
                .health
                .check(HealthCheckRequest { service: String::new() })
                .await
                .map(drop),
            Call::Validate => {
                let request = pb::ValidateSessionRequest {
                    session_token: session(),
                };
                match self.sessions.validate_session(request).await {
                    Ok(r) if !r.get_ref().valid => return Err(tonic::Code::NotFound),
                    other => other.map(drop),
                }
            }
            Call::Whoami => {
                let mut request = tonic::Request::new(pb::GetCurrentUserRequest {});
                let bearer = format!("Bearer {}", session())
                    .parse()
                    .map_err(|_| tonic::Code::Internal)?;
                request.metadata_mut().insert("authorization", bearer);
                self.sessions.get_current_user(request).await.map(drop)
            }
            Call::LoginPassword => {
                let request = pb::LoginRequest {
                    user_name: user.to_owned(),
                    password: prepared.password.clone(),
                    token: String::new(),
                    device_name: String::new(),
                };
                self.login.login(request).await.map(drop)
            }
            Call::RestValidate => {
                return match self.rest.is_session_valid(&session()).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(tonic::Code::NotFound),
                    Err(code) => Err(code),
                };
            }
            Call::LoginToken => {
                let token = prepared.access_token.clone().unwrap_or_default();
                self.login
                    .login(pb::LoginRequest {
                        token,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
            }
        };
        result.map_err(|status| status.code())
    }
}

/// Opens `connections` channels; a comma-separated `target` (several replicas) gets them in turn,
/// so that the calls, spread over the channels, are spread over the replicas.
async fn connect(target: &str, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let targets: Vec<&str> = target.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    let mut channels = Vec::with_capacity(connections);
    for i in 0..connections.max(targets.len()).max(1) {
        let target = targets.get(i % targets.len().max(1)).copied().unwrap_or(target);
        // One endpoint connect per channel: each is its own HTTP/2 connection.
        let channel = Endpoint::from_shared(target.to_owned())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {target}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

async fn login(channel: &Channel, user: &str, password: &str) -> anyhow::Result<String> {
    let request = pb::LoginRequest {
        user_name: user.to_owned(),
        password: password.to_owned(),
        token: String::new(),
        device_name: String::new(),
    };
    let response = LoginServiceClient::new(channel.clone())
        .login(request)
        .await
        .context("logging in")?;
    Ok(response.into_inner().session_token)
}

async fn prepare(args: &RunArgs, channel: &Channel) -> anyhow::Result<Prepared> {
    let password = args.password.clone().unwrap_or_default();
    let needs_password = matches!(
        args.scenario,
        Scenario::LoginPassword | Scenario::LoginToken | Scenario::Mixed
    ) || args.storm > 0;
    let mut sessions = Vec::new();
    if args.scenario.needs_sessions() {
        if let Some(path) = &args.tokens_file {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            sessions = text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
        } else {
            anyhow::ensure!(args.password.is_some(), "opening the session pool needs --password");
            for _ in 0..args.sessions.max(1) {
                sessions.push(login(channel, &args.user, &password).await?);
            }
        }
        anyhow::ensure!(!sessions.is_empty(), "no session tokens to validate");
    }
    anyhow::ensure!(
        !needs_password || args.password.is_some(),
        "this scenario logs in: give --password"
    );
    let access_token = if args.scenario == Scenario::LoginToken {
        let session = login(channel, &args.user, &password).await?;
        let mut request = tonic::Request::new(pb::CreateUserAccessTokenRequest {
            user_access_token_name: format!("load-{}", uuid::Uuid::now_v7()),
            description: "identityd-load".into(),
            expiration_days: None,
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {session}").parse()?);
        let created = AccessTokenServiceClient::new(channel.clone())
            .create_user_access_token(request)
            .await?;
        Some(created.into_inner().token)
    } else {
        None
    };
    Ok(Prepared {
        sessions,
        access_token,
        password,
    })
}

/// Per-worker results: the latency of every measured call, and the failures by code.
#[derive(Default)]
struct Tally {
    calls: Latencies,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn count(&mut self, result: Result<(), tonic::Code>, latency: Duration) {
        self.calls.record(latency);
        if let Err(code) = result {
            *self.errors.entry(format!("{code:?}")).or_default() += 1;
        }
    }
}

/// When the calls of an open load are due: call `n` at `n / rate` seconds after the start. The
/// calls due in the measured window are counted, whenever they are answered.
struct Schedule {
    start: Instant,
    rate: f64,
    next: AtomicU64,
    /// The first call measured, and the first one past the window (not sent).
    measured: std::ops::Range<u64>,
}

impl Schedule {
    fn new(rate: f64, warmup: Duration, duration: Duration) -> Self {
        let first = (warmup.as_secs_f64() * rate).ceil() as u64;
        let count = (duration.as_secs_f64() * rate).round() as u64;
        Schedule {
            start: Instant::now(),
            rate,
            next: AtomicU64::new(0),
            measured: first..first + count,
        }
    }

    fn due(&self, call: u64) -> Instant {
        self.start + Duration::from_secs_f64(call as f64 / self.rate)
    }

    /// When the measured window opens and closes.
    fn window(&self) -> (Instant, Instant) {
        (self.due(self.measured.start), self.due(self.measured.end))
    }
}

/// Where an open-load call's latency counts from. A caller that was free before the call was due
/// waited for it, and the timer's lateness in waking it is not the server's: the call counts from
/// when it was sent. A caller that took the call already due was busy with earlier ones, and that
/// wait is what a closed load hides: the call counts from when it was due.
fn counted_from(due: Instant, taken: Instant, sent: Instant) -> Instant {
    if taken < due { sent } else { due }
}

/// How the callers pace their calls.
#[derive(Clone)]
enum Pace {
    /// Each caller sends its next call when its last is answered, until `stop`; calls are measured
    /// while `measuring` is set, and at most `budget` of them when there is one.
    Closed {
        measuring: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
        budget: Option<Arc<AtomicU64>>,
    },
    /// Calls sent when due; a caller stops at the first call past the window.
    Open(Arc<Schedule>),
}

/// Runs `workers` callers of `scenario`, paced by `pace`.
fn spawn_workers(
    scenario: Scenario,
    workers: usize,
    channels: &[Channel],
    rest: &Rest,
    prepared: &Arc<Prepared>,
    user: &Arc<str>,
    pace: &Pace,
) -> Vec<tokio::task::JoinHandle<Tally>> {
    (0..workers)
        .map(|w| {
            let clients = Clients::new(channels[w % channels.len()].clone(), rest.clone());
            let (prepared, user, pace) = (prepared.clone(), user.clone(), pace.clone());
            tokio::spawn(async move {
                let mut caller = Caller {
                    scenario,
                    clients,
                    prepared,
                    user,
                    tally: Tally::default(),
                };
                match pace {
                    Pace::Closed {
                        measuring,
                        stop,
                        budget,
                    } => {
                        caller
                            .closed(w as u64, workers as u64, &measuring, &stop, budget.as_deref())
                            .await
                    }
                    Pace::Open(schedule) => caller.open(&schedule).await,
                }
                caller.tally
            })
        })
        .collect()
}

/// One caller and what it measured.
struct Caller {
    scenario: Scenario,
    clients: Clients,
    prepared: Arc<Prepared>,
    user: Arc<str>,
    tally: Tally,
}

impl Caller {
    async fn call(&mut self, n: u64) -> Result<(), tonic::Code> {
        let call = Call::nth(self.scenario, n);
        self.clients.call(call, n, &self.user, &self.prepared).await
    }

    /// Calls `first`, `first + step`, …, each when the last is answered.
    async fn closed(
        &mut self,
        first: u64,
        step: u64,
        measuring: &AtomicBool,
        stop: &AtomicBool,
        budget: Option<&AtomicU64>,
    ) {
        let mut n = first;
        while !stop.load(Ordering::Relaxed) {
            let counted = measuring.load(Ordering::Relaxed);
            if counted && let Some(budget) = budget {
                // Take one request from the budget; when it is spent, this caller is done.
                if budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                    .is_err()
                {
                    break;
                }
            }
            let start = Instant::now();
            let result = self.call(n).await;
            if counted {
                self.tally.count(result, start.elapsed());
            }
            n += step;
        }
    }

    /// Takes the next call due, waits until it is due, sends it; until the window closes.
    async fn open(&mut self, schedule: &Schedule) {
        loop {
            let n = schedule.next.fetch_add(1, Ordering::Relaxed);
            if n >= schedule.measured.end {
                break;
            }
            let due = schedule.due(n);
            let taken = Instant::now();
            if taken < due {
                tokio::time::sleep_until(due.into()).await;
            }
            let sent = Instant::now();
            let result = self.call(n).await;
            if schedule.measured.contains(&n) {
                self.tally.count(result, counted_from(due, taken, sent).elapsed());
            }
        }
    }
}

async fn gather(handles: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut all = Tally::default();
    for handle in handles {
        if let Ok(tally) = handle.await {
            all.calls.merge(tally.calls);
            for (code, n) in tally.errors {
                *all.errors.entry(code).or_default() += n;
            }
        }
    }
    all
}

/// Runs the scenario the arguments describe and returns what it measured.
pub async fn run(args: RunArgs) -> anyhow::Result<RunOutcome> {
    let channels = connect(&args.target, args.connections).await?;
    let prepared = Arc::new(prepare(&args, &channels[0]).await?);
    let rest = Rest::new(&args.target)?;
    let revocation = PreparedRevocation::new(&args, &channels).await?;
    let user: Arc<str> = args.user.clone().into();
    let duration = args.duration.unwrap_or(RunArgs::DEFAULT_DURATION);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let closed = |budget| Pace::Closed {
        measuring: measuring.clone(),
        stop: stop.clone(),
        budget,
    };
    let budget = args.requests.map(|n| Arc::new(AtomicU64::new(n)));
    let (pace, load) = match args.rate {
        Some(rate) => (
            Pace::Open(Arc::new(Schedule::new(rate, args.warmup, duration))),
            Load::Open { calls_per_second: rate },
        ),
        None => (closed(budget.clone()), Load::Closed),
    };
    let workers = spawn_workers(
        args.scenario,
        args.concurrency.max(1),
        &channels,
        &rest,
        &prepared,
        &user,
        &pace,
    );
    // The storm's callers are closed: as many logins as they can, all through the measurement.
    let storm = spawn_workers(
        Scenario::LoginPassword,
        args.storm,
        &channels,
        &rest,
        &prepared,
        &user,
        &closed(None),
    );

    let (start, end) = match &pace {
        Pace::Open(schedule) => schedule.window(),
        Pace::Closed { .. } => {
            let start = Instant::now() + args.warmup;
            (start, start + duration)
        }
    };
    tokio::time::sleep_until(start.into()).await;
    measuring.store(true, Ordering::Relaxed);
    let revocation = revocation.map(|revocation| {
        let after = args.revoke_after;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            revocation.revoke(start).await
        })
    });
    match &budget {
        Some(budget) => {
            while budget.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        None => tokio::time::sleep_until(end.into()).await,
    }
    stop.store(true, Ordering::Relaxed);
    // An open load's callers go on past the window until every call due in it is answered.
    let main = gather(workers).await;
    let elapsed = start.elapsed();
    let storm_tally = gather(storm).await;
    let revocation = match revocation {
        Some(task) => Some(task.await.context("the revocation task")??),
        None => None,
    };

    let report = Report::new(
        args.scenario.name(),
        load,
        args.concurrency,
        elapsed,
        main.calls,
        main.errors,
    );
    let storm = (args.storm > 0).then(|| {
        Report::new(
            "login-storm",
            Load::Closed,
            args.storm,
            elapsed,
            storm_tally.calls,
            storm_tally.errors,
        )
    });
    let server_rss_kib = args.pid.and_then(resident_kib);
    Ok(RunOutcome {
        report,
        storm,
        revocation,
        server_rss_kib,
    })
}

/// A process's resident memory in KiB, from /proc.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixed_scenario_is_mostly_validation() {
        let mut counts = [0usize; 3];
        for n in 0..1000 {
            match Call::nth(Scenario::Mixed, n) {
                Call::Validate => counts[0] += 1,
                Call::Whoami => counts[1] += 1,
                Call::LoginPassword => counts[2] += 1,
                _ => panic!("mixed makes only these calls"),
            }
        }
        assert_eq!(counts, [900, 80, 20]);
    }

    #[test]
    fn an_open_schedule_measures_the_calls_due_in_its_window() {
        let schedule = Schedule::new(200.0, Duration::from_millis(500), Duration::from_secs(1));
        assert_eq!(schedule.measured, 100..300, "due from 0.5 s to 1.5 s, one every 5 ms");
        assert_eq!(schedule.due(300) - schedule.due(100), Duration::from_secs(1));
        assert_eq!(schedule.due(1) - schedule.start, Duration::from_millis(5));
        let odd = Schedule::new(3.0, Duration::from_millis(100), Duration::from_millis(2500));
        assert_eq!(
            odd.measured,
            1..9,
            "calls due at 1/3 s, 2/3 s, …, 8/3 s: the window holds 7.5"
        );
    }

    #[test]
    fn a_call_counts_from_when_it_was_due_unless_its_caller_waited_for_it() {
        let due = Instant::now();
        let ms = Duration::from_millis;
        // Free early, woken 1 ms late by the timer: counted from the send.
        assert_eq!(counted_from(due, due - ms(3), due + ms(1)), due + ms(1));
        // Taken 40 ms after it was due, busy with earlier calls: the 40 ms count.
        assert_eq!(counted_from(due, due + ms(40), due + ms(40)), due);
        assert_eq!(counted_from(due, due, due), due);
    }

    #[test]
    fn resident_memory_of_this_process_is_readable() {
        assert!(resident_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
