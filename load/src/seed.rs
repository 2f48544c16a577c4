//! Fills a database with users and live sessions quickly, so that table size can be varied.
//! Rows are written in large batches (Postgres: arrays through UNNEST; SQLite: one transaction).
//!
//! The schema is the service's: [`seed`] applies the service's migrations first, and writes rows
//! that the service must read back as live users and sessions. `tests/seed.rs` checks exactly that
//! on both stores, so this SQL cannot drift from the migrations unnoticed.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use chrono::Duration;
use identityd::auth::{HashingSettings, PasswordHasher, SessionToken};
use identityd::clock::{Clock, SystemClock};
use identityd::config::Config;
use identityd::domain::Password;
use identityd::startup::open_store;
use sqlx::Connection;
use uuid::Uuid;

use crate::cli::SeedArgs;

/// The password every seeded user has.
pub const SEED_PASSWORD: &str = "load-test-password";
const BATCH: usize = 10_000;

struct SeedUser {
    id: Uuid,
    name: String,
}

struct SeedSession {
    id: Uuid,
    hash: Vec<u8>,
    user: Uuid,
}

/// What a seeding wrote that a caller can use.
#[derive(Debug)]
pub struct Seeded {
    /// The users' names, in a new tenant of their own; every one has the password [`SEED_PASSWORD`].
    pub user_names: Vec<String>,
    /// The kept sessions' tokens: of the first `keep_tokens` sessions, or of a random sample.
    pub tokens: Vec<String>,
    /// Which session each kept token opens (`tokens[k]` is session `kept[k]`); session `i`
    /// belongs to user `i % users`.
    pub kept: Vec<usize>,
}

/// Seeds a new tenant with `users` users and `sessions` sessions spread over them, after applying
/// the service's migrations; keeps the tokens of `keep_tokens` sessions, the first ones or (with
/// `keep_random`) a random sample (written to `tokens_out` when given), and writes the users'
/// names to `users_out` when given.
pub async fn seed(args: &SeedArgs) -> anyhow::Result<Seeded> {
    open_store(&Config::for_database(&args.database_url)).await?;
    let hasher = PasswordHasher::new(HashingSettings::default())?;
    let password = Password::for_login("password", SEED_PASSWORD).map_err(|v| anyhow::anyhow!("{}", v.message))?;
    let password_hash = hasher.hash(&password).await?;
    let now = SystemClock.now();
    let tenant = Uuid::now_v7();
    // The id's random tail: its head is a timestamp that changes only every 65 s, so two seedings
    // a minute apart would name the same tenant.
    let run = &tenant.simple().to_string()[24..];
    let users: Vec<SeedUser> = (0..args.users.max(1))
        .map(|i| SeedUser {
            id: Uuid::now_v7(),
            name: format!("load-{run}-{i}@example.com"),
        })
        .collect();
    let keep = args.keep_tokens.min(args.sessions);
    let kept: Vec<usize> = if args.keep_random {
        rand::seq::index::sample(&mut rand::thread_rng(), args.sessions, keep).into_vec()
    } else {
        (0..keep).collect()
    };
    // Where in `tokens` each kept session's token goes.
    let place: std::collections::HashMap<usize, usize> = kept.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let mut tokens = vec![String::new(); kept.len()];
    let sessions: Vec<SeedSession> = (0..args.sessions)
        .map(|i| {
            let token = SessionToken::mint();
            if let Some(&k) = place.get(&i) {
                tokens[k] = token.expose().to_owned();
            }
            SeedSession {
                id: Uuid::now_v7(),
                hash: token.hash().as_bytes().to_vec(),
                user: users[i % users.len()].id,
            }
        })
        .collect();
    let opened = now - Duration::from_std(args.age)?;
    let expire = opened + Duration::hours(12);
    if args.database_url.starts_with("sqlite:") {
        seed_sqlite(
            &args.database_url,
            tenant,
            run,
            &users,
            &sessions,
            &password_hash,
            now,
            (opened, expire),
        )
        .await?;
    } else {
        seed_postgres(
            &args.database_url,
            tenant,
            run,
            &users,
            &sessions,
            &password_hash,
            now,
            (opened, expire),
        )
        .await?;
    }
    if let Some(path) = &args.tokens_out {
        write_lines(path, &tokens)?;
    }
    if let Some(path) = &args.users_out {
        write_lines(path, users.iter().map(|u| &u.name))?;
    }
    Ok(Seeded {
        user_names: users.into_iter().map(|u| u.name).collect(),
        tokens,
        kept,
    })
}

fn write_lines(path: &std::path::Path, lines: impl IntoIterator<Item = impl std::fmt::Display>) -> anyhow::Result<()> {
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    for line in lines {
        writeln!(file, "{line}")?;
    }
    file.flush()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn seed_postgres(
    url: &str,
    tenant: Uuid,
    run: &str,
    users: &[SeedUser],
    sessions: &[SeedSession],
    password_hash: &str,
    now: chrono::DateTime<chrono::Utc>,
    (opened, expire): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
) -> anyhow::Result<()> {
    let mut db = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to Postgres")?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO tenants (tenant_id, name, name_key, password_expiry_days, max_access_token_days, create_time, \
         update_time) VALUES ($1, $2, $2, 90, 0, $3, $3)",
    )
    .bind(tenant)
    .bind(format!("load-{run}"))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for chunk in users.chunks(BATCH) {
        let ids: Vec<Uuid> = chunk.iter().map(|u| u.id).collect();
        let names: Vec<String> = chunk.iter().map(|u| u.name.clone()).collect();
        sqlx::query(
            "INSERT INTO users (user_id, tenant_id, user_name, user_name_key, email, first_name, last_name, \
             time_zone, locale, date_format, employee_number, roles, disabled, password_hash, \
             password_change_time, create_time, update_time) \
             SELECT id, $3, name, name, name, 'Load', 'Test', '', '', '', '', 0, false, $4, $5, $5, $5 \
             FROM UNNEST($1::uuid[], $2::text[]) AS u(id, name)",
        )
        .bind(ids)
        .bind(names)
        .bind(tenant)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    for chunk in sessions.chunks(BATCH) {
        let ids: Vec<Uuid> = chunk.iter().map(|s| s.id).collect();
        let hashes: Vec<Vec<u8>> = chunk.iter().map(|s| s.hash.clone()).collect();
        let owners: Vec<Uuid> = chunk.iter().map(|s| s.user).collect();
        sqlx::query(
            "INSERT INTO sessions (session_id, token_hash, user_id, tenant_id, kind, create_time, expire_time, \
             last_use_time) SELECT id, hash, owner, $4, 'password', $5, $6, $5 \
             FROM UNNEST($1::uuid[], $2::bytea[], $3::uuid[]) AS s(id, hash, owner)",
        )
        .bind(ids)
        .bind(hashes)
        .bind(owners)
        .bind(tenant)
        .bind(opened)
        .bind(expire)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE sessions").execute(&mut db).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn seed_sqlite(
    url: &str,
    tenant: Uuid,
    run: &str,
    users: &[SeedUser],
    sessions: &[SeedSession],
    password_hash: &str,
    now: chrono::DateTime<chrono::Utc>,
    (opened, expire): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
) -> anyhow::Result<()> {
    let mut db = sqlx::SqliteConnection::connect(url).await.context("opening SQLite")?;
    let mut tx = db.begin().await?;
    let (now, opened, expire) = (
        now.timestamp_micros(),
        opened.timestamp_micros(),
        expire.timestamp_micros(),
    );
    sqlx::query(
        "INSERT INTO tenants (tenant_id, name, name_key, password_expiry_days, max_access_token_days, create_time, \
         update_time) VALUES (?1, ?2, ?2, 90, 0, ?3, ?3)",
    )
    .bind(tenant)
    .bind(format!("load-{run}"))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let password_hash: Arc<str> = password_hash.into();
    for user in users {
        sqlx::query(
            "INSERT INTO users (user_id, tenant_id, user_name, user_name_key, email, first_name, last_name, \
             time_zone, locale, date_format, employee_number, roles, disabled, password_hash, \
             password_change_time, create_time, update_time) \
             VALUES (?1, ?2, ?3, ?3, ?3, 'Load', 'Test', '', '', '', '', 0, 0, ?4, ?5, ?5, ?5)",
        )
        .bind(user.id)
        .bind(tenant)
        .bind(&user.name)
        .bind(&*password_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    for session in sessions {
        sqlx::query(
            "INSERT INTO sessions (session_id, token_hash, user_id, tenant_id, kind, create_time, expire_time, \
             last_use_time) VALUES (?1, ?2, ?3, ?4, 'password', ?5, ?6, ?5)",
        )
        .bind(session.id)
        .bind(&session.hash)
        .bind(session.user)
        .bind(tenant)
        .bind(opened)
        .bind(expire)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
