//! The Postgres server the integration tests run against: the one `DATABASE_URL` names, or a
//! throwaway cluster started from the installed server binaries and removed at the end.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestPostgres {
    base_url: String,
    cluster: Option<Cluster>,
}

struct Cluster {
    child: Child,
    dir: PathBuf,
    port: u16,
    bin_dir: PathBuf,
}

impl TestPostgres {
    /// Uses `DATABASE_URL` when set, else starts a throwaway cluster.
    pub fn start() -> TestPostgres {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return TestPostgres {
                base_url: url,
                cluster: None,
            };
        }
        let cluster = Cluster::start();
        TestPostgres {
            base_url: format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port),
            cluster: Some(cluster),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn describe(&self) -> String {
        match &self.cluster {
            None => "the server DATABASE_URL names".to_owned(),
            Some(c) => format!(
                "throwaway cluster on 127.0.0.1:{} (binaries from {})",
                c.port,
                c.bin_dir.display()
            ),
        }
    }

    /// Stops and removes a throwaway cluster; nothing to do for `DATABASE_URL`.
    pub fn stop(&mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.stop();
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Replaces the database name in a postgres URL, keeping any query string.
pub fn database_url(base: &str, db_name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((head, q)) => (head, Some(q)),
        None => (base, None),
    };
    let authority_start = without_query.find("://").map_or(0, |i| i + 3);
    let path_start = without_query[authority_start..].find('/').map(|i| authority_start + i);
    let root = path_start.map_or(without_query, |i| &without_query[..i]);
    match query {
        Some(q) => format!("{root}/{db_name}?{q}"),
        None => format!("{root}/{db_name}"),
    }
}

/// The directory holding `initdb`, `postgres` and `pg_isready`.
fn find_bin_dir() -> PathBuf {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return dir;
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, dir)| has_server(dir))
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, dir)| dir).unwrap_or_else(|| {
        panic!("no PostgreSQL server binaries found: install postgresql, or set DATABASE_URL to a running server")
    })
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A command that runs as the `postgres` system user when we are root, because initdb and
/// postgres refuse to run as root.
fn server_command(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Cluster {
    fn start() -> Cluster {
        let bin_dir = find_bin_dir();
        let as_postgres = running_as_root();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("identityd-test-pg-{}-{nanos}", std::process::id()));
        let data = dir.join("data");
        fs::create_dir_all(&dir).expect("create the cluster directory");
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "chown of {} to postgres failed",
                dir.display()
            );
        }
        let init = server_command(&bin_dir.join("initdb"), as_postgres)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--no-locale",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );

        let port = free_port();
        let log_path = dir.join("postgres.log");
        let log = fs::File::create(&log_path).expect("create the server log");
        let child = server_command(&bin_dir.join("postgres"), as_postgres)
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-p", &port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
            ])
            .args([
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=500",
                "-c",
                "shared_buffers=128MB",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let mut cluster = Cluster {
            child,
            dir,
            port,
            bin_dir,
        };
        cluster.wait_until_ready(&log_path);
        cluster
    }

    /// Polls `pg_isready` until the server accepts connections: it answers the question directly
    /// rather than guessing with a fixed delay.
    fn wait_until_ready(&mut self, log_path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut backoff = Duration::from_millis(20);
        loop {
            let ready = Command::new(self.bin_dir.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log = fs::read_to_string(log_path).unwrap_or_default();
                panic!("the throwaway Postgres did not start ({exited:?}):\n{log}");
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }

    fn stop(mut self) {
        // SIGINT is Postgres's fast shutdown. It goes to the postmaster itself (its pid is the first
        // line of postmaster.pid), because runuser does not pass signals on to the server.
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned));
        let target = pid.unwrap_or_else(|| self.child.id().to_string());
        let _ = Command::new("kill").args(["-INT", &target]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() || pid_file.exists() {
            if Instant::now() > deadline {
                let _ = Command::new("kill").args(["-KILL", &target]).status();
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
