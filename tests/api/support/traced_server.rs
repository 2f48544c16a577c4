//! The real `identityd` binary over a test's database with every log line on (`RUST_LOG=trace`),
//! for the tests that look for secrets in what the service writes to its log.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

use identityd::grpc::pb::admin_service_client::AdminServiceClient;
use identityd::grpc::pb::login_service_client::LoginServiceClient;
use identityd::grpc::pb::session_service_client::SessionServiceClient;
use tonic::transport::Channel;

use super::app::{TEST_KEY_ENCRYPTION_KEY, TestApp};

/// A running binary and every line it has written so far.
pub struct TracedServer {
    child: Child,
    lines: Receiver<String>,
    readers: Vec<JoinHandle<()>>,
    log: Vec<String>,
}

impl TracedServer {
    /// Stops `app`'s in-process server and starts the binary over the same database in its place:
    /// `app`'s clients then talk to the binary.
    pub async fn replace(app: &mut TestApp) -> TracedServer {
        app.stop().await;
        let mut child = Command::new(env!("CARGO_BIN_EXE_identityd"))
            .env("DATABASE_URL", &app.db.url)
            // The key the in-process server sealed the signing keys and secrets with.
            .env("IDENTITYD_KEY_ENCRYPTION_KEY", TEST_KEY_ENCRYPTION_KEY)
            .env("IDENTITYD_LISTEN", "127.0.0.1:0")
            .env("IDENTITYD_ARGON2_MEMORY_KIB", "64")
            .env("IDENTITYD_ARGON2_ITERATIONS", "1")
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start identityd");
        // Every line of both streams, read on threads; the address comes from the "serving" line.
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
        let address = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("identityd says where it serves");
            let found = line.contains("serving gRPC").then(|| {
                let at = line.find("address=").expect("an address") + "address=".len();
                line[at..].split_whitespace().next().unwrap().to_owned()
            });
            log.push(line);
            if let Some(address) = found {
                break address;
            }
        };
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .expect("connect to identityd");
        app.login = LoginServiceClient::new(channel.clone());
        app.sessions = SessionServiceClient::new(channel.clone());
        app.admin = AdminServiceClient::new(channel.clone());
        app.channel = channel;
        TracedServer {
            child,
            lines,
            readers,
            log,
        }
    }

    /// Stops the binary (SIGTERM, as an orchestrator would), checks it stopped cleanly, and
    /// answers every line it wrote, after checking that trace lines were among them.
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
        self.log.extend(self.lines.try_iter());
        assert!(self.log.iter().any(|l| l.contains("TRACE")), "trace lines were written");
        self.log
    }
}
