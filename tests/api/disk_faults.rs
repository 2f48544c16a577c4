//! Faults of the SQLite file under the real binary: the disk filling up while it serves, and a
//! database on a read-only file system.
//!
//! The binary runs in a mount namespace of its own (`unshare --user --map-root-user --mount`, no
//! privilege needed) with its database on a small tmpfs mounted there; the test reaches that file
//! system through `/proc/PID/root` to fill it up and free it again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tonic::Code;

use identityd::grpc::pb;

use crate::support::app::{ADMIN_PASSWORD, ADMIN_USER, TestApp, TestEnv, assert_error, bearer};
use crate::support::db::StoreKind;
use crate::support::server_process::{BINARY, ServerProcess};

pub fn sqlite_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_full_disk_refuses_logins_cleanly_keeps_validating_and_recovers_when_freed,
        a_database_on_a_read_only_file_system_stops_the_start_with_a_clear_error,
    ]
}

/// How many logins may succeed after the disk is full before one must be refused: SQLite may
/// still reuse pages it already holds in its write-ahead log.
const LOGINS_UNTIL_REFUSED: usize = 2_000;

async fn a_full_disk_refuses_logins_cleanly_keeps_validating_and_recovers_when_freed(env: TestEnv) {
    let (mut app, source) = a_stopped_app_with_a_session(&env).await;
    let mount = source.join("small-disk");
    let mut server = ServerProcess::start_with(
        on_a_small_file_system(&mount, &source, Mount::ReadWrite),
        &format!("sqlite://{}/identityd.db", mount.display()),
        "info",
        // Every validation reads the database.
        &[("IDENTITYD_VALIDATION_CACHE_TTL", "0s")],
    )
    .await;
    app.talk_to(server.channel.clone());
    let disk = PathBuf::from(format!("/proc/{}/root{}", server.pid(), mount.display()));
    let mut opened = vec![app.admin_token.clone()];
    opened.push(app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token);

    let filler = disk.join("filler");
    let filled = fill_until_full(&filler);
    let full_at = Instant::now();
    let mut refused = 0;
    let mut logins_until_refused = 0;
    while refused == 0 {
        logins_until_refused += 1;
        assert!(
            logins_until_refused <= LOGINS_UNTIL_REFUSED,
            "a full disk refuses a login within {LOGINS_UNTIL_REFUSED} logins"
        );
        match app.login(ADMIN_USER, ADMIN_PASSWORD).await {
            Ok(answer) => opened.push(answer.session_token),
            Err(status) => {
                refused_as_unavailable(&status, &mut server);
                refused += 1;
            }
        }
    }
    // Full: logins are refused as unavailable (or succeed in what space SQLite still holds), and
    // every session opened so far still validates.
    for _ in 0..20 {
        match app.login(ADMIN_USER, ADMIN_PASSWORD).await {
            Ok(answer) => opened.push(answer.session_token),
            Err(status) => {
                refused_as_unavailable(&status, &mut server);
                refused += 1;
            }
        }
    }
    for token in &opened {
        assert!(
            app.validate(token).await.valid,
            "a session opened before stays valid on a full disk"
        );
    }
    let full_for = full_at.elapsed();

    std::fs::remove_file(&filler).expect("free the disk");
    // The first login after the space is back succeeds: no connection was left in a failed
    // transaction.
    opened.push(app.login_ok(ADMIN_USER, ADMIN_PASSWORD).await.session_token);
    for token in &opened {
        assert!(
            app.validate(token).await.valid,
            "every session whose login answered OK is kept"
        );
    }
    // Nothing half-written: one session and one login event per login that answered OK, as the
    // admin calls list them.
    let sessions = every_session_of(&app, &app.admin_user_id).await;
    let login_events = every_login_event(&app).await;
    println!(
        "sqlite full disk: filled {} KiB; first refusal after {} logins; {refused} logins refused, {} opened \
         and all valid, during {:.2} s full; {sessions} sessions and {login_events} login events stored",
        filled / 1024,
        logins_until_refused,
        opened.len(),
        full_for.as_secs_f64(),
    );
    assert_eq!(sessions, opened.len(), "no session half-written by a refused login");
    assert_eq!(login_events, opened.len(), "no login event without its session");

    let log = server.stop();
    assert!(
        !log.iter().any(|l| l.contains("panicked")),
        "no panic on a full disk:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains("database or disk is full")),
        "the log names the cause:\n{}",
        log.join("\n")
    );
    app.finish().await;
}

async fn a_database_on_a_read_only_file_system_stops_the_start_with_a_clear_error(env: TestEnv) {
    let (app, source) = a_stopped_app_with_a_session(&env).await;
    let mount = source.join("read-only");
    let url = format!("sqlite://{}/identityd.db", mount.display());
    let started = Instant::now();
    let (status, written) = tokio::task::spawn_blocking(move || {
        ServerProcess::run_until_exit(on_a_small_file_system(&mount, &source, Mount::ReadOnly), &url, &[])
    })
    .await
    .unwrap();
    let took = started.elapsed();
    println!(
        "sqlite read-only file system: {status} after {:.2} s, saying: {}",
        took.as_secs_f64(),
        written.trim()
    );
    assert!(
        !status.success(),
        "identityd does not serve a database it cannot write:\n{written}"
    );
    assert!(!written.contains("panicked"), "no panic:\n{written}");
    assert!(
        written.contains("read-only") || written.contains("readonly"),
        "the error says the database is read-only:\n{written}"
    );
    assert!(
        took < Duration::from_secs(30),
        "the start fails at once, it does not hang"
    );
    app.finish().await;
}

/// Checks that a call was refused as the store being unavailable, showing the binary's log if not.
fn refused_as_unavailable(status: &tonic::Status, server: &mut ServerProcess) {
    if status.code() != Code::Unavailable {
        panic!(
            "refused with {status:?}; identityd wrote:\n{}",
            server.written_so_far().join("\n")
        );
    }
    assert_error(status, Code::Unavailable, "STORE_UNAVAILABLE");
}

/// How many sessions `user_id` has, every page of ListUserSessions.
async fn every_session_of(app: &TestApp, user_id: &str) -> usize {
    let (mut count, mut page_token) = (0, String::new());
    loop {
        let page = app
            .admin
            .clone()
            .list_user_sessions(bearer(
                pb::ListUserSessionsRequest {
                    user_id: user_id.to_owned(),
                    page_size: 500,
                    page_token,
                    include_ended: true,
                },
                &app.admin_token,
            ))
            .await
            .expect("list the sessions")
            .into_inner();
        count += page.sessions.len();
        if page.next_page_token.is_empty() {
            return count;
        }
        page_token = page.next_page_token;
    }
}

/// How many successful logins the audit log holds, every page of ListAuditEvents.
async fn every_login_event(app: &TestApp) -> usize {
    let (mut count, mut page_token) = (0, String::new());
    loop {
        let page = app
            .admin
            .clone()
            .list_audit_events(bearer(
                pb::ListAuditEventsRequest {
                    action: "login.succeeded".into(),
                    page_size: 500,
                    page_token,
                    ..Default::default()
                },
                &app.admin_token,
            ))
            .await
            .expect("list the audit events")
            .into_inner();
        count += page.audit_events.len();
        if page.next_page_token.is_empty() {
            return count;
        }
        page_token = page.next_page_token;
    }
}

/// A SQLite app that has opened its admin session, stopped, with the directory of its database.
async fn a_stopped_app_with_a_session(env: &TestEnv) -> (TestApp, PathBuf) {
    assert_eq!(env.store, StoreKind::Sqlite);
    let mut app = TestApp::spawn(env).await;
    app.stop().await;
    let file = app.db.url.strip_prefix("sqlite://").expect("a SQLite URL");
    let source = Path::new(file).parent().expect("a directory").to_owned();
    (app, source)
}

#[derive(Clone, Copy, PartialEq)]
enum Mount {
    ReadWrite,
    ReadOnly,
}

/// The command that runs the binary in a mount namespace of its own, with a 16 MiB tmpfs mounted
/// at `mount` holding a copy of the database files in `source` (read-only if asked).
fn on_a_small_file_system(mount: &Path, source: &Path, how: Mount) -> Command {
    std::fs::create_dir_all(mount).expect("create the mount point");
    let script = r#"set -e
mount -t tmpfs -o size=16m identityd-test "$1"
cp "$2"/identityd.db* "$1"/
if [ "$4" = ro ]; then mount -o remount,ro "$1"; fi
exec "$3""#;
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"])
        .arg(mount)
        .arg(source)
        .arg(BINARY)
        .arg(if how == Mount::ReadOnly { "ro" } else { "rw" });
    command
}

/// Writes `path` until its file system has no space left, and answers how many bytes it took.
fn fill_until_full(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 512] {
        let zeros = vec![0u8; chunk];
        loop {
            match file.write(&zeros) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk failed otherwise: {e}"),
            }
        }
    }
    // Whatever is still buffered by the kernel is on tmpfs already: nothing to flush to.
    written
}
