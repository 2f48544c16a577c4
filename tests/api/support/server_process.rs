//! The real `identityd` binary as its own process, configured by environment variables as an
//! operator would, with every line it writes kept for the test.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::app::TEST_KEY_ENCRYPTION_KEY;

/// How long the binary may take to write a line a test waits for.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running binary, a channel to it, and every line it has written so far.
pub struct ServerProcess {
    pub channel: Channel,
    child: Child,
    /// In a mutex only so that a test may hold a process across an await.
    lines: Mutex<Receiver<String>>,
    readers: Vec<JoinHandle<()>>,
    log: Vec<String>,
}

impl ServerProcess {
    /// Starts the binary over `database_url` on an OS-chosen port with cheap password hashing,
    /// the tests' key-encryption key, `RUST_LOG=log_level` and the variables in `env`, and
    /// connects to it once it says where it serves.
    pub async fn start(database_url: &str, log_level: &str, env: &[(&str, &str)]) -> ServerProcess {
        Self::start_with(Command::new(BINARY), database_url, log_level, env).await
    }

    /// As [`ServerProcess::start`], with `command` starting the binary: a wrapper program (such as
    /// `unshare`) that ends by running it, as its own process (the process id stays the binary's).
    pub async fn start_with(
        mut command: Command,
        database_url: &str,
        log_level: &str,
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut child = configure(&mut command, database_url, log_level, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start identityd");
        // Every line of both streams, read on threads.
        let (sender, lines) = std::sync::mpsc::channel::<String>();
        let streams = [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ];
        let readers = streams
            .into_iter()
            .map(|stream| {
                let sender = sender.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let _ = sender.send(line);
                    }
                })
            })
            .collect();
        let mut log = Vec::new();
        let serving = wait_for_line(&lines, &mut log, "serving gRPC");
        let at = serving.find("address=").expect("an address") + "address=".len();
        let address = serving[at..].split_whitespace().next().unwrap().to_owned();
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to identityd");
        ServerProcess {
            channel,
            child,
            lines: Mutex::new(lines),
            readers,
            log,
        }
    }

    /// The process id of the binary.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `command` (see [`ServerProcess::start_with`]) until the binary exits by itself, and
    /// answers how it exited and everything it wrote.
    pub fn run_until_exit(mut command: Command, database_url: &str, env: &[(&str, &str)]) -> (ExitStatus, String) {
        let output = configure(&mut command, database_url, "info", env)
            .output()
            .expect("run identityd");
        let mut written = String::from_utf8_lossy(&output.stdout).into_owned();
        written.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status, written)
    }

    /// Every line the binary has written so far.
    pub fn written_so_far(&mut self) -> &[String] {
        self.log.extend(self.lines.get_mut().unwrap().try_iter());
        &self.log
    }

    /// Waits until the binary writes a line containing `text` (or has written one), and answers it.
    pub fn wait_for(&mut self, text: &str) -> String {
        if let Some(line) = self.log.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        wait_for_line(&self.lines.lock().unwrap(), &mut self.log, text)
    }

    /// Stops the binary (SIGTERM, as an orchestrator would), checks it stopped cleanly, and
    /// answers every line it wrote.
    pub fn stop(mut self) -> Vec<String> {
        let stopped = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        assert!(stopped.unwrap().success());
        assert!(self.child.wait().unwrap().success(), "identityd stops cleanly");
        for reader in self.readers {
            reader.join().unwrap();
        }
        self.log.extend(self.lines.into_inner().unwrap().try_iter());
        self.log
    }
}

/// The binary the tests start.
pub const BINARY: &str = env!("CARGO_BIN_EXE_identityd");

/// Sets the environment every started binary gets.
fn configure<'c>(
    command: &'c mut Command,
    database_url: &str,
    log_level: &str,
    env: &[(&str, &str)],
) -> &'c mut Command {
    command
        .env("DATABASE_URL", database_url)
        // The key the in-process servers seal the signing keys and secrets with.
        .env("IDENTITYD_KEY_ENCRYPTION_KEY", TEST_KEY_ENCRYPTION_KEY)
        .env("IDENTITYD_LISTEN", "127.0.0.1:0")
        .env("IDENTITYD_ARGON2_MEMORY_KIB", "64")
        .env("IDENTITYD_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", log_level)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
}

/// Reads `lines` into `log` until one contains `text`.
fn wait_for_line(lines: &Receiver<String>, log: &mut Vec<String>, text: &str) -> String {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("identityd never wrote {text:?}; it wrote:\n{}", log.join("\n")));
        log.push(line.clone());
        if line.contains(text) {
            return line;
        }
    }
}
