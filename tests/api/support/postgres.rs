//! The Postgres server the integration tests run against: the one `DATABASE_URL` names, or a
//! throwaway cluster started from the installed server binaries and removed at the end.
//!
//! The harness's `main` calls [`TestPostgres::start`] once before running the trials and
//! [`TestPostgres::stop`] once after; [`Drop`] does the same clean-up if the harness panics in
//! between, so a failed run does not leave a server or a data directory behind. The load
//! generator's seeding test (`load/tests/seed.rs`) includes this file too, for the same server.
//!
//! Only `std` is used (no `libc`, no new crates): user ids come from `/proc/self/status` and
//! `/etc/passwd`, and signals are sent with the `kill` command.
//!
//! Why not a crate: none of those weighed runs the installed server binaries, downloads nothing at
//! test time and works as root, as CI runs. pgtemp runs as root only through `sudo` (not installed
//! on our machines) and waits for the server with fixed sleeps; postgresql_embedded downloads its
//! binaries unless pointed at an installation and, like pg-embed (which always downloads), runs
//! initdb as the current user, which root cannot; pg-embed-setup-unpriv needs a separately
//! installed worker binary as root and sits on postgresql_embedded; pgdo-lib uses the installed
//! binaries, but as the current user.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the server may take to accept connections before the run gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts at starting the server, in case another process takes the chosen port first.
const START_ATTEMPTS: usize = 3;

/// The Postgres server for the whole test run.
pub struct TestPostgres {
    base_url: String,
    /// `None` when `DATABASE_URL` names the server (or once a throwaway cluster is stopped).
    cluster: Option<Cluster>,
    /// What [`describe`](Self::describe) reports; kept after `stop` so it stays meaningful.
    description: String,
}

impl TestPostgres {
    /// Uses `DATABASE_URL` when set, else starts a throwaway cluster.
    ///
    /// An empty `DATABASE_URL` counts as unset. Panics, with the server's log, when a throwaway
    /// cluster cannot be started.
    pub fn start() -> TestPostgres {
        if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) {
            return TestPostgres {
                base_url: url,
                cluster: None,
                description: "DATABASE_URL".to_owned(),
            };
        }
        let cluster = Cluster::start();
        TestPostgres {
            base_url: format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port),
            description: format!(
                "throwaway cluster on port {} ({} from {})",
                cluster.port,
                cluster.version,
                cluster.bin_dir.display()
            ),
            cluster: Some(cluster),
        }
    }

    /// `postgres://…` URL of the server's maintenance database.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Human-readable description for the test output, e.g. `DATABASE_URL` or
    /// `throwaway cluster on port 54321 (PostgreSQL 15.4 from /usr/lib/postgresql/15/bin)`.
    pub fn describe(&self) -> String {
        self.description.clone()
    }

    /// Stops and removes a throwaway cluster; no-op for `DATABASE_URL`. Calling it again is a
    /// no-op too.
    pub fn stop(&mut self) {
        if let Some(mut cluster) = self.cluster.take() {
            cluster.shutdown();
            if cluster.dir.exists() {
                eprintln!(
                    "warning: could not remove the throwaway Postgres directory {}",
                    cluster.dir.display()
                );
            }
        }
    }
}

impl Drop for TestPostgres {
    /// Cleans up when `stop` was not reached, e.g. because the harness panicked.
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway primary with a hot standby streaming from it, on two ports, for the tests of reads
/// from standbys; whatever `DATABASE_URL` says, since a standby needs a replication connection to
/// a primary this process controls. Dropping it stops both and removes their directories.
#[allow(dead_code)] // used by the service's tests, not by the load generator's
pub struct ReplicatedPostgres {
    primary: Cluster,
    standby: Option<Cluster>,
}

#[allow(dead_code)]
impl ReplicatedPostgres {
    /// Starts a primary, then makes and starts its standby (blocking: call it off the runtime).
    pub fn start() -> ReplicatedPostgres {
        let primary = Cluster::start();
        let standby = Cluster::standby_of(&primary);
        ReplicatedPostgres {
            primary,
            standby: Some(standby),
        }
    }

    /// `postgres://…` URL of the primary's maintenance database.
    pub fn primary_base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.primary.port)
    }

    /// The standby's URL of the database `db_url` names on the primary.
    pub fn standby_url_of(&self, db_url: &str) -> String {
        let standby = self.standby.as_ref().expect("the standby is running");
        db_url.replace(
            &format!("127.0.0.1:{}/", self.primary.port),
            &format!("127.0.0.1:{}/", standby.port),
        )
    }

    /// Stops the standby and removes it, as when it goes away (blocking).
    pub fn stop_standby(&mut self) {
        if let Some(mut standby) = self.standby.take() {
            standby.shutdown();
        }
    }
}

/// A throwaway cluster of a test's own, to stop and start again under a running server without
/// disturbing the other tests (blocking calls: make them off the runtime).
#[allow(dead_code)] // used by the service's tests, not by the load generator's
pub struct RestartablePostgres {
    cluster: Cluster,
}

#[allow(dead_code)]
impl RestartablePostgres {
    pub fn start() -> RestartablePostgres {
        RestartablePostgres {
            cluster: Cluster::start(),
        }
    }

    /// `postgres://…` URL of its maintenance database.
    pub fn base_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.cluster.port)
    }

    /// Stops the server (a fast shutdown: clients are disconnected).
    pub fn stop(&mut self) {
        self.cluster.stop_server();
    }

    /// Starts it again on the same port, and waits until it accepts connections.
    pub fn start_again(&mut self) {
        if let Err((why, log)) = self.cluster.start_server_on_port() {
            panic!("Postgres did not start again: {why}. Server log:\n{log}");
        }
    }
}

/// Replaces the database name (the path component) in a postgres URL, keeping any query string
/// and fragment; a URL without a path gets one.
///
/// `postgres://u:p@h:5432/postgres?sslmode=disable` with `t1` gives
/// `postgres://u:p@h:5432/t1?sslmode=disable`; `postgres://h:5432` gives `postgres://h:5432/t1`.
/// `db_name` is inserted as is: test database names are plain identifiers that need no
/// percent-encoding.
pub fn database_url(base: &str, db_name: &str) -> String {
    // The authority starts after the scheme's "://" and ends at the first '/', '?' or '#'; the path
    // runs from there to the first '?' or '#'. (A ':' or '@' in the password is fine; a '/', '?' or
    // '#' there would have to be percent-encoded in any valid URL.)
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find(['/', '?', '#'])
        .map_or(base.len(), |i| authority_start + i);
    let path_end = base[authority_end..]
        .find(['?', '#'])
        .map_or(base.len(), |i| authority_end + i);
    format!("{}/{db_name}{}", &base[..authority_end], &base[path_end..])
}

/// A cluster this process created: its directory and, once started, its server.
///
/// Dropping it stops the server and removes the directory, so a panic anywhere in
/// [`Cluster::start`] (say initdb fails, or the server never becomes ready) cleans up as well.
struct Cluster {
    /// Temporary directory holding the data directory (`data`), the socket and the server log.
    dir: PathBuf,
    /// The server process: `postgres` itself, or `runuser`/`su` wrapping it when we are root.
    child: Option<Child>,
    port: u16,
    bin_dir: PathBuf,
    /// E.g. "PostgreSQL 15.4".
    version: String,
    /// Whether the server programs run as the `postgres` system user (we are root).
    as_postgres: bool,
}

impl Cluster {
    fn start() -> Cluster {
        let mut cluster = Cluster::new_dir();
        cluster.initdb();
        cluster.start_or_panic();
        cluster
    }

    /// A hot standby of `primary`: a base backup of it (`pg_basebackup -R`, streaming the WAL it
    /// needs), started on a port of its own, replaying the primary's changes as they stream in.
    fn standby_of(primary: &Cluster) -> Cluster {
        let mut cluster = Cluster::new_dir();
        let mut args = os_args(["-h", "127.0.0.1", "-p", &primary.port.to_string(), "-U", "postgres"]);
        args.extend(os_args(["-X", "stream", "-R", "--no-sync", "-c", "fast", "-D"]));
        args.push(cluster.data_dir().into());
        let output = cluster
            .server_command(&cluster.bin_dir.join("pg_basebackup"), &args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run pg_basebackup from {}: {e}", cluster.bin_dir.display()));
        assert!(
            output.status.success(),
            "pg_basebackup failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        cluster.start_or_panic();
        cluster
    }

    /// An empty cluster directory, owned by the user the server programs run as.
    fn new_dir() -> Cluster {
        let bin_dir = find_bin_dir();
        let version = server_version(&bin_dir);
        let as_postgres = running_as_root();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("identityd-test-pg-{}-{nanos}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        // From here on the directory belongs to `cluster`, whose Drop removes it.
        let cluster = Cluster {
            dir,
            child: None,
            port: 0,
            bin_dir,
            version,
            as_postgres,
        };
        if as_postgres {
            // initdb and postgres run as `postgres`, which must be able to create the data
            // directory and the socket in here.
            chown_to_postgres(&cluster.dir);
        }
        cluster
    }

    fn start_or_panic(&mut self) {
        let cluster = self;
        for attempt in 1..=START_ATTEMPTS {
            match cluster.start_server() {
                Ok(()) => return,
                // The port was free when we chose it, but another process may have bound it before
                // the server did; choose another.
                Err((_, log)) if attempt < START_ATTEMPTS && is_port_clash(&log) => continue,
                Err((why, log)) => panic!(
                    "the throwaway Postgres ({} from {}) did not start: {why}. Set DATABASE_URL \
                     to use a running server instead. Server log:\n{log}",
                    cluster.version,
                    cluster.bin_dir.display()
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Creates the cluster: trust authentication (only this process connects, over loopback),
    /// superuser `postgres`, and no fsync since the data is thrown away.
    fn initdb(&self) {
        let mut args = os_args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
            "-D",
        ]);
        args.push(self.data_dir().into());
        let output = self
            .server_command(&self.bin_dir.join("initdb"), &args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run initdb from {}: {e}", self.bin_dir.display()));
        assert!(
            output.status.success(),
            "initdb failed ({}){}:\n{}{}",
            output.status,
            if self.as_postgres {
                " running as the postgres user, which needs to reach the temporary directory"
            } else {
                ""
            },
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }

    /// Starts the server on a fresh port and waits until it accepts connections; on failure,
    /// stops whatever is left of it and returns what went wrong and the server log.
    fn start_server(&mut self) -> Result<(), (String, String)> {
        self.port = free_port();
        self.start_server_on_port()
    }

    /// [`Self::start_server`] on the port the cluster already has (after [`Self::stop_server`]).
    fn start_server_on_port(&mut self) -> Result<(), (String, String)> {
        let log_path = self.log_path();
        let log = fs::File::create(&log_path).unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let log_for_stderr = log.try_clone().expect("duplicate the server log handle");
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            self.data_dir().into(),
            "-k".into(),
            self.dir.clone().into(),
        ];
        args.extend(os_args(["-p", &self.port.to_string()]));
        // Durability is pointless for a cluster that is thrown away; the connection limit leaves
        // room for many tests, each with its own pool, running in parallel.
        args.extend(os_args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=400",
            "-c",
            "shared_buffers=128MB",
        ]));
        let child = self
            .server_command(&self.bin_dir.join("postgres"), &args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start postgres from {}: {e}", self.bin_dir.display()));
        self.child = Some(child);
        match self.wait_until_ready() {
            Ok(()) => Ok(()),
            Err(why) => {
                self.stop_server();
                let log = fs::read_to_string(&log_path).unwrap_or_else(|e| format!("(no log: {e})"));
                Err((why, log))
            }
        }
    }

    /// Polls `pg_isready` until the server accepts connections.
    ///
    /// There is no fixed sleep standing in for "the server has probably started by now": that
    /// would be both slow on a fast machine and flaky on a loaded one. The loop asks the server
    /// itself, backs off briefly between attempts, and gives up at a deadline, or as soon as the
    /// server process has exited.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut backoff = Duration::from_millis(10);
        let pg_isready = self.bin_dir.join("pg_isready");
        let port = self.port.to_string();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("the server exited ({status}) before accepting connections"));
            }
            let ready = Command::new(&pg_isready)
                .args(["-q", "-h", "127.0.0.1", "-p", &port, "-t", "2"])
                .stdin(Stdio::null())
                .status()
                .map_err(|e| format!("run {}: {e}", pg_isready.display()))?;
            // pg_isready: 0 = accepting connections, 1 = rejecting (still starting up),
            // 2 = no response, 3 = bad invocation.
            match ready.code() {
                // Some server accepts connections on the port; make sure it is ours, not one that
                // took the port before ours could bind it: ours records in its postmaster.pid that
                // it is listening on this port and ready.
                Some(0) if self.postmaster_ready() => return Ok(()),
                Some(3) => return Err(format!("{} rejected its arguments", pg_isready.display())),
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the server did not accept connections on 127.0.0.1:{port} within {READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// Whether our server's `postmaster.pid` says it accepts connections on our port: line 4
    /// holds the port, and line 8 the status (PostgreSQL 10 and later), which becomes `ready` only
    /// once the server listens. The port alone proves nothing: the server writes it before it tries
    /// to bind, and may then fail to.
    fn postmaster_ready(&self) -> bool {
        let Ok(contents) = fs::read_to_string(self.data_dir().join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = contents.lines().map(str::trim).collect();
        lines.get(3) == Some(&self.port.to_string().as_str()) && lines.get(7) == Some(&"ready")
    }

    /// Stops the server with a fast shutdown (SIGINT: abort transactions, disconnect clients,
    /// exit cleanly), killing it if that takes more than [`STOP_TIMEOUT`]. Idempotent; never
    /// panics, since it also runs from `Drop`, possibly while unwinding.
    fn stop_server(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let target = self.postmaster_pid(&mut child);
        if let Some(pid) = target {
            send_signal("INT", &[pid]);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    send_signal("KILL", &target.into_iter().chain([child.id()]).collect::<Vec<_>>());
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The pid of the postmaster that `child` runs, or `None` once `child` has exited.
    ///
    /// When we are root, `child` is runuser or su, and signalling it does not stop the server:
    /// runuser (util-linux 2.38, at least) dies of SIGINT and leaves the server running, and su
    /// answers it by sending the server SIGTERM and, two seconds later, SIGKILL. So the postmaster itself is signalled: its pid is
    /// the first line of postmaster.pid, or, before the server has written that file, the pid of
    /// the wrapper's child (su's shell `exec`s the server). Without a wrapper it is `child` itself.
    fn postmaster_pid(&self, child: &mut Child) -> Option<u32> {
        let pid_file = self.data_dir().join("postmaster.pid");
        // The wrapper may not have started the server yet; it will within moments.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if child.try_wait().ok().flatten().is_some() {
                return None;
            }
            if let Some(pid) = fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                return Some(pid);
            }
            if !self.as_postgres {
                return Some(child.id());
            }
            if let Some(pid) = child_pids(child.id()).first() {
                return Some(*pid);
            }
            if Instant::now() >= deadline {
                return Some(child.id());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server and removes the directory. Idempotent; never panics.
    fn shutdown(&mut self) {
        self.stop_server();
        if self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    /// A command running `program` in the cluster directory, as the `postgres` system user when
    /// we are root.
    ///
    /// initdb and postgres refuse to run as root (a server compromised through SQL would own the
    /// machine), and tests commonly run as root in containers and CI. So as root they run as
    /// `postgres`, the user the distribution packages create, through `runuser` (util-linux; made
    /// for root, no password and no PAM authentication), or `su` where runuser is missing. The
    /// working directory is the cluster's, since the test's own (e.g. under /root) may be
    /// unreadable by `postgres`.
    fn server_command(&self, program: &Path, args: &[OsString]) -> Command {
        let mut command = if !self.as_postgres {
            let mut c = Command::new(program);
            c.args(args);
            c
        } else if let Some(runuser) = find_program("runuser") {
            let mut c = Command::new(runuser);
            c.args(["-u", "postgres", "--"]).arg(program).args(args);
            c
        } else {
            // su hands one command line to a shell: quote every word, and `exec` so the server is
            // su's child rather than the shell's.
            let line = std::iter::once(program.as_os_str())
                .chain(args.iter().map(OsString::as_os_str))
                .map(shell_quote)
                .collect::<Vec<_>>()
                .join(" ");
            let mut c = Command::new(find_program("su").unwrap_or_else(|| "su".into()));
            c.args(["postgres", "-s", "/bin/sh", "-c"]).arg(format!("exec {line}"));
            c
        };
        command.current_dir(&self.dir);
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The directory holding `initdb`, `postgres` and `pg_isready`: `pg_config --bindir` when that
/// has the server binaries (pg_config may come from a client-only package), else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian and Ubuntu's layout) that has them.
fn find_bin_dir() -> PathBuf {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return dir;
        }
    }
    let mut candidates: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            // "15", "9.6": compare numerically, so 10 is newer than 9.6.
            let version = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries found (neither `pg_config --bindir` nor \
             /usr/lib/postgresql/*/bin has initdb and postgres): install the PostgreSQL server, \
             or set DATABASE_URL to a running server"
        )
    })
}

/// "PostgreSQL 15.4" from `postgres --version` ("postgres (PostgreSQL) 15.4 (Debian …)"), which
/// works as root since it exits before the root check.
fn server_version(bin_dir: &Path) -> String {
    Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let number = text.split("(PostgreSQL)").nth(1)?.split_whitespace().next()?.to_owned();
            Some(format!("PostgreSQL {number}"))
        })
        .unwrap_or_else(|| "PostgreSQL".to_owned())
}

/// Whether this process's effective uid is 0: the second id on the `Uid:` line of
/// `/proc/self/status` (real, effective, saved, filesystem), else `id -u`.
pub(crate) fn running_as_root() -> bool {
    let from_proc = fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
    });
    from_proc.unwrap_or_else(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
    })
}

/// Gives `dir` to the `postgres` system user, looked up in `/etc/passwd`; `chown` does the
/// lookup itself (through NSS) when the user is not listed there.
fn chown_to_postgres(dir: &Path) {
    let from_passwd = fs::read_to_string("/etc/passwd").ok().and_then(|passwd| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                ["postgres", _, uid, gid, ..] => Some((uid.parse::<u32>().ok()?, gid.parse::<u32>().ok()?)),
                _ => None,
            }
        })
    });
    let result = match from_passwd {
        Some((uid, gid)) => std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| e.to_string()),
        None => match Command::new("chown").arg("postgres:postgres").arg(dir).output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            Err(e) => Err(e.to_string()),
        },
    };
    if let Err(e) = result {
        panic!(
            "running as root, the throwaway Postgres runs as the `postgres` system user, but {} \
             could not be given to it ({e}); create that user (install the PostgreSQL server \
             package), run as another user, or set DATABASE_URL",
            dir.display()
        );
    }
}

/// A port nothing listens on right now: bind port 0 and let the listener go. Another process could
/// take it before the server binds it; [`Cluster::start`] then retries with another.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

fn is_port_clash(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not bind")
}

/// Sends `signal` to each pid with the `kill` command (there is no signal API in std). Errors
/// are ignored: the process may have exited already.
pub(crate) fn send_signal(signal: &str, pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The processes whose parent is `parent`, from `/proc/<pid>/stat` ("pid (comm) state ppid …";
/// the command name may itself contain spaces and parentheses, so fields count from the last ')').
fn child_pids(parent: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            let ppid: u32 = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// `name` in `PATH`, or in the sbin directories that a non-login root shell may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| fs::metadata(candidate).is_ok_and(|meta| meta.is_file()))
}

fn os_args<const N: usize>(args: [&str; N]) -> Vec<OsString> {
    args.into_iter().map(OsString::from).collect()
}

/// `s` single-quoted for `/bin/sh`.
fn shell_quote(s: &OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"))
}
