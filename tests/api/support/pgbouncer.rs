//! pgbouncer in transaction mode in front of the test Postgres, for the tests of identityd behind
//! a pooler. Debian's `pgbouncer` package: `.ci/run` installs it, and so does [`Pgbouncer::start`]
//! when it is missing and we are root.
//!
//! Few server connections on purpose: with one per database, every client's transaction runs on
//! the same server connection, so a statement that leans on server state outside its transaction
//! (a prepared statement, a session setting) fails at once rather than now and then.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::postgres::{free_port, running_as_root, send_signal};

const PROGRAM: &str = "/usr/sbin/pgbouncer";

/// A running pgbouncer and its directory (configuration, user list, log), removed on drop.
pub struct Pgbouncer {
    dir: PathBuf,
    child: Child,
    port: u16,
    /// `host:port` of the Postgres server behind it, as database URLs write it.
    server: String,
}

impl Pgbouncer {
    /// Starts pgbouncer in front of the server `postgres_base_url` names, lending at most
    /// `server_connections` server connections per database and user, one transaction at a time.
    /// Blocking: call it off the runtime.
    pub fn start(postgres_base_url: &str, server_connections: u32) -> Pgbouncer {
        install_if_missing();
        let url = reqwest::Url::parse(postgres_base_url).expect("a postgres:// URL");
        let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
        let server_port = url.port().unwrap_or(5432);
        let user = if url.username().is_empty() {
            "postgres"
        } else {
            url.username()
        };
        let dir = std::env::temp_dir().join(format!("identityd-pgbouncer-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&dir).expect("create the pgbouncer directory");
        // pgbouncer runs as `postgres` when we are root: it must write its log there.
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        // `trust`: pgbouncer asks clients for nothing, but must know the user; the password, if
        // any, is the one it gives the server.
        let password = url.password().unwrap_or_default();
        fs::write(dir.join("users.txt"), format!("\"{user}\" \"{password}\"\n")).unwrap();
        let port = free_port();
        let config = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {users}\n\
             pool_mode = transaction\n\
             default_pool_size = {server_connections}\n\
             max_client_conn = 1000\n\
             server_reset_query =\n\
             logfile = {log}\n\
             pidfile =\n",
            users = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
        );
        fs::write(dir.join("pgbouncer.ini"), config).unwrap();
        let mut command = Command::new(PROGRAM);
        if running_as_root() {
            // pgbouncer refuses to run as root; `-u` has it switch user itself.
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(dir.join("pgbouncer.ini"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let mut pgbouncer = Pgbouncer {
            dir,
            child,
            port,
            server: format!("{host}:{server_port}"),
        };
        pgbouncer.wait_until_accepting();
        pgbouncer
    }

    /// The URL through pgbouncer of the database that `db_url` names on the server behind it.
    pub fn url_of(&self, db_url: &str) -> String {
        let through = db_url.replace(&format!("@{}/", self.server), &format!("@127.0.0.1:{}/", self.port));
        assert_ne!(through, db_url, "{db_url} is not on the server behind pgbouncer");
        through
    }

    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pgbouncer exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "pgbouncer never accepted:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        // SIGTERM: pgbouncer closes every connection and exits at once.
        send_signal("TERM", &[self.child.id()]);
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Installs Debian's pgbouncer when it is missing, as root with apt-get (once, for every test
/// that starts one); else says how.
fn install_if_missing() {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(install);
}

fn install() {
    if Path::new(PROGRAM).is_file() {
        return;
    }
    let apt_get = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = running_as_root() && apt_get(&["update", "-qq"]) && apt_get(&["install", "-y", "-qq", "pgbouncer"]);
    assert!(
        installed && Path::new(PROGRAM).is_file(),
        "pgbouncer is not installed: `apt-get install pgbouncer` (Debian's package), or run .ci/run"
    );
}
