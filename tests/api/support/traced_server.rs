//! The real `identityd` binary over a test's database with every log line on (`RUST_LOG=trace`),
//! for the tests that look for secrets in what the service writes to its log.

use super::app::TestApp;
use super::server_process::ServerProcess;

/// A running binary at `RUST_LOG=trace`.
pub struct TracedServer(ServerProcess);

impl TracedServer {
    /// Stops `app`'s in-process server and starts the binary over the same database in its place:
    /// `app`'s clients then talk to the binary.
    pub async fn replace(app: &mut TestApp) -> TracedServer {
        app.stop().await;
        let server = ServerProcess::start(&app.db.url, "trace", &[]).await;
        app.talk_to(server.channel.clone());
        TracedServer(server)
    }

    /// Stops the binary cleanly and answers every line it wrote, after checking that trace lines
    /// were among them.
    pub fn stop(self) -> Vec<String> {
        let log = self.0.stop();
        assert!(log.iter().any(|l| l.contains("TRACE")), "trace lines were written");
        log
    }
}
