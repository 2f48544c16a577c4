//! Session lookups on a SQLite file, read by the thread that asks.
//!
//! sqlx runs every SQLite connection on a worker thread of its own: a query is a message to that
//! thread, each row a message back, and handing the connection back to its pool one more round
//! trip (a ping). For the read every uncached validation makes — a few rows found through an
//! index, microseconds of SQLite's time — those hand-offs and the thread wake-ups they cost
//! outweighed the read (see BENCHMARKS.md, "Session lookups on the calling thread"). The connections
//! here are read-only, on the same file (WAL lets them read beside the writer), and each is used
//! by one thread at a time, directly. They run the same statements as the pooled readers
//! ([`super::sql::lookup_statement`]); only the row mapping is written again, for rusqlite's rows.
//!
//! A read never waits on the calling thread: when SQLite would have to (SQLITE_BUSY, while a
//! checkpoint or a recovery holds the file) or every connection is in use, the lookup is not made
//! here and the caller reads through the pool instead — as it does after a failed read, so that
//! the pool's reads decide what a failing file answers.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, Row};
use uuid::Uuid;

use super::records::{SessionDetails, SessionLookup, SessionRecord, UserRecord};
use super::sql::{LOOKUP_BATCH_MAX, lookup_statement};
use crate::domain::{SessionKind, UserProfile};

/// Read-only connections to one SQLite file, each lent to one thread at a time.
pub struct SqliteSessionReads {
    path: PathBuf,
    /// The connections; more are opened on demand, up to `max`.
    connections: Mutex<Connections>,
    max: usize,
}

#[derive(Default)]
struct Connections {
    /// Those not lent out.
    idle: Vec<Reader>,
    /// How many connections exist, lent out or idle.
    opened: usize,
    /// Set by [`SqliteSessionReads::close`]: no connection is lent or opened any more.
    closed: bool,
}

/// A connection and where the lookup statements' columns are in its rows (the same for every
/// statement: they differ only in how many hashes they take).
struct Reader {
    connection: Connection,
    columns: Columns,
}

impl SqliteSessionReads {
    /// Lookups on the database file at `path`, through at most `max` connections. The schema must
    /// be in place: the first connection is opened and checked here.
    pub fn open(path: &Path, max: usize) -> anyhow::Result<Self> {
        let reads = Self {
            path: path.to_owned(),
            connections: Mutex::default(),
            max: max.max(1),
        };
        let reader = reads.connect()?;
        *reads.lock() = Connections {
            idle: vec![reader],
            opened: 1,
            closed: false,
        };
        Ok(reads)
    }

    /// The sessions of `token_hashes` with what validating them needs, or `None` when they are
    /// better read through the pool: the lookup would have to wait (the file busy, every
    /// connection lent out) or failed.
    pub fn lookup_sessions(&self, token_hashes: &[[u8; 32]]) -> Option<Vec<SessionLookup>> {
        let reader = self.borrow()?;
        let started = std::time::Instant::now();
        let result = reader.lookup_sessions(token_hashes);
        // Counted with the pool's statements (`identityd_db_statement_duration_seconds`).
        crate::telemetry::metrics::db_statement(started.elapsed());
        match result {
            Err(e) if is_busy(&e) => {
                self.give_back(reader);
                None
            }
            Err(e) => {
                // The pool reads again and reports what is wrong as every other read does (the
                // file gone or failing is UNAVAILABLE); this connection is not reused.
                tracing::warn!(error = %e, "a session lookup on the calling thread failed; reading through the pool");
                self.lock().opened -= 1;
                None
            }
            Ok(found) => {
                self.give_back(reader);
                Some(found)
            }
        }
    }

    /// Closes the idle connections, and each one lent out when it comes back; lookups then read
    /// through the pool.
    pub fn close(&self) {
        let idle = {
            let mut connections = self.lock();
            connections.closed = true;
            std::mem::take(&mut connections.idle)
        };
        drop(idle);
    }

    /// An idle connection, or a new one if fewer than `max` exist.
    fn borrow(&self) -> Option<Reader> {
        let mut connections = self.lock();
        if connections.closed {
            return None;
        }
        if let Some(reader) = connections.idle.pop() {
            return Some(reader);
        }
        if connections.opened >= self.max {
            return None;
        }
        connections.opened += 1;
        drop(connections);
        match self.connect() {
            Ok(reader) => Some(reader),
            Err(e) => {
                tracing::warn!(error = %e, "could not open a SQLite connection for session lookups");
                self.lock().opened -= 1;
                None
            }
        }
    }

    fn give_back(&self, reader: Reader) {
        let mut connections = self.lock();
        if connections.closed {
            drop(connections);
            drop(reader);
        } else {
            connections.idle.push(reader);
        }
    }

    fn connect(&self) -> anyhow::Result<Reader> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags)?;
        // Never wait for the file on the calling thread (see the module's documentation).
        connection.busy_timeout(Duration::ZERO)?;
        connection.set_prepared_statement_cache_capacity(8);
        let columns = Columns::of(&connection)?;
        Ok(Reader { connection, columns })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Reader {
    fn lookup_sessions(&self, token_hashes: &[[u8; 32]]) -> anyhow::Result<Vec<SessionLookup>> {
        let columns = self.columns;
        let mut found = Vec::with_capacity(token_hashes.len());
        for batch in token_hashes.chunks(LOOKUP_BATCH_MAX) {
            let statement = lookup_statement(batch.len());
            let mut query = self.connection.prepare_cached(&statement.sql)?;
            // A shorter list is padded to the statement's length with its last hash, as the
            // pooled readers do.
            let parameters = (0..statement.parameters).map(|i| batch[i.min(batch.len() - 1)].as_slice());
            let mut rows = query.query(rusqlite::params_from_iter(parameters))?;
            while let Some(row) = rows.next()? {
                found.push(columns.read(row)?);
            }
        }
        Ok(found)
    }
}

fn is_busy(e: &anyhow::Error) -> bool {
    e.downcast_ref::<rusqlite::Error>().is_some_and(|e| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    })
}

/// The index of each column a [`SessionLookup`] is read from.
#[derive(Debug, Clone, Copy)]
struct Columns {
    session_id: usize,
    token_hash: usize,
    user_id: usize,
    session_tenant_id: usize,
    kind: usize,
    session_create_time: usize,
    expire_time: usize,
    last_use_time: usize,
    end_time: usize,
    impersonator_user_id: usize,
    original_session_id: usize,
    access_token_id: usize,
    access_token_name: usize,
    impersonator_user_name: usize,
    service_account_id: usize,
    service_account_name: usize,
    user_agent: usize,
    peer_address: usize,
    device_name: usize,
    tenant_id: usize,
    user_name: usize,
    user_name_key: usize,
    email: usize,
    first_name: usize,
    last_name: usize,
    time_zone: usize,
    locale: usize,
    date_format: usize,
    employee_number: usize,
    roles: usize,
    disabled: usize,
    password_hash: usize,
    password_change_time: usize,
    force_change_password: usize,
    failed_login_count: usize,
    locked_until: usize,
    create_time: usize,
    update_time: usize,
    password_expiry_days: usize,
    tenant_name: usize,
}

impl Columns {
    /// Finds the columns by name in the lookup statement's result, as sqlx's `try_get` does: the
    /// first column of that name (`user_id` is both the session's and its user's; they are equal
    /// whenever the user's columns are read).
    fn of(connection: &Connection) -> anyhow::Result<Self> {
        let statement = connection.prepare_cached(&lookup_statement(1).sql)?;
        let names = statement.column_names();
        let at = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| anyhow::anyhow!("the session lookup has no column {name}"))
        };
        Ok(Self {
            session_id: at("session_id")?,
            token_hash: at("token_hash")?,
            user_id: at("user_id")?,
            session_tenant_id: at("session_tenant_id")?,
            kind: at("kind")?,
            session_create_time: at("session_create_time")?,
            expire_time: at("expire_time")?,
            last_use_time: at("last_use_time")?,
            end_time: at("end_time")?,
            impersonator_user_id: at("impersonator_user_id")?,
            original_session_id: at("original_session_id")?,
            access_token_id: at("access_token_id")?,
            access_token_name: at("access_token_name")?,
            impersonator_user_name: at("impersonator_user_name")?,
            service_account_id: at("service_account_id")?,
            service_account_name: at("service_account_name")?,
            user_agent: at("user_agent")?,
            peer_address: at("peer_address")?,
            device_name: at("device_name")?,
            tenant_id: at("tenant_id")?,
            user_name: at("user_name")?,
            user_name_key: at("user_name_key")?,
            email: at("email")?,
            first_name: at("first_name")?,
            last_name: at("last_name")?,
            time_zone: at("time_zone")?,
            locale: at("locale")?,
            date_format: at("date_format")?,
            employee_number: at("employee_number")?,
            roles: at("roles")?,
            disabled: at("disabled")?,
            password_hash: at("password_hash")?,
            password_change_time: at("password_change_time")?,
            force_change_password: at("force_change_password")?,
            failed_login_count: at("failed_login_count")?,
            locked_until: at("locked_until")?,
            create_time: at("create_time")?,
            update_time: at("update_time")?,
            password_expiry_days: at("password_expiry_days")?,
            tenant_name: at("tenant_name")?,
        })
    }

    fn read(&self, row: &Row<'_>) -> anyhow::Result<SessionLookup> {
        let session = SessionRecord {
            session_id: uuid(row, self.session_id)?,
            token_hash: row.get(self.token_hash)?,
            user_id: optional_uuid(row, self.user_id)?,
            tenant_id: uuid(row, self.session_tenant_id)?,
            kind: SessionKind::try_from(row.get::<_, String>(self.kind)?)?,
            create_time: time(row, self.session_create_time)?,
            expire_time: time(row, self.expire_time)?,
            last_use_time: time(row, self.last_use_time)?,
            end_time: optional_time(row, self.end_time)?,
            impersonator_user_id: optional_uuid(row, self.impersonator_user_id)?,
            original_session_id: optional_uuid(row, self.original_session_id)?,
            access_token_id: optional_uuid(row, self.access_token_id)?,
            access_token_name: row.get(self.access_token_name)?,
            impersonator_user_name: row.get(self.impersonator_user_name)?,
            service_account_id: optional_uuid(row, self.service_account_id)?,
            service_account_name: row.get(self.service_account_name)?,
            details: SessionDetails {
                user_agent: row.get(self.user_agent)?,
                peer_address: row.get(self.peer_address)?,
                device_name: row.get(self.device_name)?,
            },
        };
        // The user's columns come from an outer join: all null for a service-account session.
        let user = match session.user_id {
            Some(user_id) => Some(UserRecord {
                user_id,
                tenant_id: uuid(row, self.tenant_id)?,
                user_name: row.get(self.user_name)?,
                user_name_key: row.get(self.user_name_key)?,
                profile: UserProfile {
                    email: row.get(self.email)?,
                    first_name: row.get(self.first_name)?,
                    last_name: row.get(self.last_name)?,
                    time_zone: row.get(self.time_zone)?,
                    locale: row.get(self.locale)?,
                    date_format: row.get(self.date_format)?,
                    employee_number: row.get(self.employee_number)?,
                },
                roles: row.get(self.roles)?,
                disabled: row.get(self.disabled)?,
                password_hash: row.get(self.password_hash)?,
                password_change_time: time(row, self.password_change_time)?,
                force_change_password: row.get(self.force_change_password)?,
                failed_login_count: row.get(self.failed_login_count)?,
                locked_until: optional_time(row, self.locked_until)?,
                create_time: time(row, self.create_time)?,
                update_time: time(row, self.update_time)?,
            }),
            None => None,
        };
        Ok(SessionLookup {
            session,
            user,
            password_expiry_days: row.get(self.password_expiry_days)?,
            tenant_name: row.get(self.tenant_name)?,
        })
    }
}

/// A UUID as sqlx keeps it in SQLite: its 16 bytes.
fn uuid(row: &Row<'_>, column: usize) -> anyhow::Result<Uuid> {
    let bytes = row.get_ref(column)?.as_blob()?;
    Ok(Uuid::from_slice(bytes)?)
}

fn optional_uuid(row: &Row<'_>, column: usize) -> anyhow::Result<Option<Uuid>> {
    match row.get_ref(column)?.as_blob_or_null()? {
        Some(bytes) => Ok(Some(Uuid::from_slice(bytes)?)),
        None => Ok(None),
    }
}

/// A time as [`super::time::StoredTime`] keeps it in SQLite: microseconds since the epoch.
fn time(row: &Row<'_>, column: usize) -> anyhow::Result<DateTime<Utc>> {
    let micros: i64 = row.get(column)?;
    DateTime::from_timestamp_micros(micros).ok_or_else(|| anyhow::anyhow!("stored time {micros} is out of range"))
}

fn optional_time(row: &Row<'_>, column: usize) -> anyhow::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(column)? {
        Some(_) => time(row, column).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::AuditEvent;
    use crate::store::Store;
    use crate::store::records::{ServiceAccountRecord, TenantRecord};
    use crate::store::sqlite::SqliteStore;

    fn audit(action: &str) -> AuditEvent {
        AuditEvent {
            event_id: Uuid::now_v7(),
            time: Utc::now(),
            action: action.into(),
            tenant_id: None,
            actor_user_id: None,
            subject_user_id: None,
            session_id: None,
            peer_address: None,
            details: BTreeMap::new(),
        }
    }

    /// A second's precision is not the store's: times are kept to the microsecond.
    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(1_800_000_000_000_000 + seconds * 1_000_000 + 123_456).unwrap()
    }

    fn user(tenant_id: Uuid, name: &str) -> UserRecord {
        UserRecord {
            user_id: Uuid::now_v7(),
            tenant_id,
            user_name: name.into(),
            user_name_key: name.to_lowercase(),
            profile: UserProfile {
                email: format!("{name}@example.com"),
                first_name: "Ann".into(),
                last_name: "Lee".into(),
                time_zone: "Europe/Paris".into(),
                locale: "fr_FR".into(),
                date_format: "dd/MM/yyyy".into(),
                employee_number: "E-7".into(),
            },
            roles: 5,
            disabled: true,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            password_change_time: at(1),
            force_change_password: true,
            failed_login_count: 3,
            locked_until: Some(at(2)),
            create_time: at(3),
            update_time: at(4),
        }
    }

    /// A migrated store in a database file of its own, with `readers` readers, and its directory.
    async fn file_store(readers: u32) -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("identityd-reads-{}", Uuid::new_v4().simple()));
        let url = format!("sqlite://{}", dir.join("identityd.db").display());
        let mut store = SqliteStore::open(&url, readers, Duration::from_secs(5)).await.unwrap();
        store.migrate().await.unwrap();
        (store, dir)
    }

    /// Every kind of session the lookup reads — a user's with every optional column set, an
    /// impersonation of another user, a service account's with no user, one ended — reads the
    /// same through the calling thread's connections as through sqlx's pool.
    #[tokio::test]
    async fn lookups_on_the_calling_thread_read_what_the_pooled_readers_read() {
        let (store, dir) = file_store(4).await;
        let pooled_only = SqliteStore {
            session_reads: None,
            ..store.clone()
        };

        let tenant = TenantRecord {
            tenant_id: Uuid::now_v7(),
            name: "Acme".into(),
            name_key: "acme".into(),
            password_expiry_days: Some(90),
            max_access_token_days: 0,
            min_password_length: 12,
            lockout_failures: 5,
            lockout_seconds: 60,
            max_lockout_seconds: 3600,
            allow_customer_support: true,
            served_tenant_ids: Vec::new(),
            create_time: at(0),
            update_time: at(0),
        };
        store.insert_tenant(&tenant, &audit("tenant.created")).await.unwrap();
        let ann = user(tenant.tenant_id, "Ann");
        let bob = user(tenant.tenant_id, "Bob");
        store.insert_user(&ann, &audit("user.created")).await.unwrap();
        store.insert_user(&bob, &audit("user.created")).await.unwrap();
        let account = ServiceAccountRecord {
            service_account_id: Uuid::now_v7(),
            tenant_id: tenant.tenant_id,
            name: "Builds".into(),
            name_key: "builds".into(),
            description: "CI".into(),
            create_time: at(0),
        };
        store
            .insert_service_account(&account, &audit("service_account.created"))
            .await
            .unwrap();

        let opened = |hash: u8, kind| SessionRecord::opened(vec![hash; 32], tenant.tenant_id, kind, at(10), at(99));
        let anns = SessionRecord {
            user_id: Some(ann.user_id),
            details: SessionDetails {
                user_agent: Some("grpc-go/1.70".into()),
                peer_address: Some("192.0.2.7".into()),
                device_name: Some("build box".into()),
            },
            ..opened(1, SessionKind::Password)
        };
        let impersonation = SessionRecord {
            user_id: Some(ann.user_id),
            impersonator_user_id: Some(bob.user_id),
            original_session_id: Some(anns.session_id),
            ..opened(2, SessionKind::Proxy)
        };
        let builds = SessionRecord {
            service_account_id: Some(account.service_account_id),
            ..opened(3, SessionKind::ServiceAccount)
        };
        let ended = SessionRecord {
            user_id: Some(bob.user_id),
            end_time: Some(at(20)),
            ..opened(4, SessionKind::Password)
        };
        for session in [&anns, &impersonation, &builds, &ended] {
            store.insert_session(session, &audit("login.succeeded")).await.unwrap();
        }

        let hashes: Vec<[u8; 32]> = (1..=5).map(|b| [b; 32]).collect();
        let reads = store
            .session_reads
            .as_ref()
            .expect("a database file reads on the calling thread");
        let mut here = reads.lookup_sessions(&hashes).expect("read here");
        let mut pooled = pooled_only.lookup_sessions(&hashes).await.unwrap();
        here.sort_by_key(|l| l.session.session_id);
        pooled.sort_by_key(|l| l.session.session_id);
        assert_eq!(here.len(), 4, "four sessions, the fifth hash unknown");
        assert_eq!(here, pooled);
        let service_account = here.iter().find(|l| l.session.session_id == builds.session_id).unwrap();
        assert_eq!(service_account.user, None);
        assert_eq!(service_account.session.service_account_name.as_deref(), Some("Builds"));
        let proxied = here
            .iter()
            .find(|l| l.session.session_id == impersonation.session_id)
            .unwrap();
        assert_eq!(proxied.session.impersonator_user_name.as_deref(), Some("Bob"));
        assert_eq!(
            proxied.user,
            store.get_user(ann.user_id).await.unwrap(),
            "the user as stored"
        );
        assert_eq!(proxied.password_expiry_days, Some(90));
        assert_eq!(proxied.tenant_name, "Acme");

        // Through the store's own call, which reads here first.
        let mut through_store = store.lookup_sessions(&hashes).await.unwrap();
        through_store.sort_by_key(|l| l.session.session_id);
        assert_eq!(through_store, pooled);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// With every connection lent out, a lookup is not made here (the store then reads through
    /// its pool), and a connection given back is used again rather than another opened.
    #[tokio::test]
    async fn a_lookup_is_left_to_the_pool_when_every_connection_is_in_use() {
        let (store, dir) = file_store(1).await;
        let reads = store.session_reads.clone().unwrap();

        let lent = reads.borrow().expect("the one connection");
        assert!(reads.lookup_sessions(&[[1; 32]]).is_none(), "none left to read with");
        reads.give_back(lent);
        assert_eq!(reads.lookup_sessions(&[[1; 32]]).expect("read here"), Vec::new());
        assert_eq!(reads.lock().opened, 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
