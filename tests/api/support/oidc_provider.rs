//! A real OpenID Provider for the single sign-on tests: panva's `oidc-provider` (pinned in
//! tests/oidc-provider/package-lock.json) run by Node, installed with `npm ci` the first time a
//! test needs it, and stopped when the test drops it. Starting it again on the same port gives a
//! provider with the same issuer and a new signing key: a key rotation.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// The client identityd is registered as.
pub const CLIENT_ID: &str = "identityd-tests";
pub const CLIENT_SECRET: &str = "the-oidc-client-secret-only-the-provider-and-identityd-know";
/// Where the provider sends the browser back to (never contacted: the test browser stops there).
pub const REDIRECT_URI: &str = "https://app.example.com/sso/callback";
/// Another URI both the provider and the tenant allow.
pub const OTHER_REDIRECT_URI: &str = "https://app.example.com/sso/other-callback";
pub const POST_LOGOUT_REDIRECT_URI: &str = "https://app.example.com/signed-out";

/// How long the provider may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One `npm ci` at a time; done once per run.
static INSTALLED: Mutex<bool> = Mutex::new(false);

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

/// Installs the provider's packages from the lockfile when they are missing.
fn install() {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return;
    }
    let dir = provider_dir();
    let has = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
    };
    if !has("node") || !has("npm") {
        // Debian's Node; the harness runs as root on a fresh machine, as CI does.
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "nodejs", "npm"])
            .status();
    }
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm, to install the test OpenID Provider (apt-get install nodejs npm)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    *installed = true;
}

/// A running provider; killed when dropped.
pub struct OidcProvider {
    pub port: u16,
    child: Child,
}

impl OidcProvider {
    /// Starts a provider on a free loopback port.
    pub fn start() -> OidcProvider {
        install();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        OidcProvider {
            port,
            child: spawn(port),
        }
    }

    /// The issuer, as identityd is configured with it.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Moves the provider's clock `seconds` forward, so that codes and sessions it issued expire.
    pub async fn advance_clock(&self, seconds: u64) {
        let response = reqwest::Client::new()
            .post(format!("{}/test/clock?advance={seconds}", self.issuer()))
            .send()
            .await
            .expect("the provider's test clock");
        assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    }

    /// Stops the provider and starts it again on the same port with a new signing key (its
    /// sessions and codes are gone too).
    pub fn restart_with_new_key(&mut self) {
        stop(&mut self.child);
        self.child = spawn(self.port);
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts Node on `port` and waits for the provider to say it listens.
fn spawn(port: u16) -> Child {
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(provider_dir())
        .env("PORT", port.to_string())
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URIS", format!("{REDIRECT_URI} {OTHER_REDIRECT_URI}"))
        .env("POST_LOGOUT_REDIRECT_URIS", POST_LOGOUT_REDIRECT_URI)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node, to run the test OpenID Provider (apt-get install nodejs)");
    let stdout = child.stdout.take().expect("the provider's stdout");
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(line) if line.trim() == "listening" => {
                    let _ = ready.send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    if started.recv_timeout(START_TIMEOUT).is_err() {
        stop(&mut child);
        panic!("the test OpenID Provider did not start on port {port} within {START_TIMEOUT:?}");
    }
    child
}
