//! Measurements that need no load: the hashing ceiling, and start-up time and idle memory.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, Version};
use identityd::auth::{HashingPriority, HashingSettings, PasswordHasher};
use identityd::domain::Password;
use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::cli::{HashCeilingArgs, StartupArgs};
use crate::run::resident_kib;

#[derive(Debug, Serialize)]
pub struct HashCeiling {
    pub threads: usize,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes per second with all threads through the service's own hasher, which reuses argon2's
    /// memory between hashes.
    pub hashes_per_second: f64,
    /// The same hashing with argon2 allocating its memory for every hash.
    pub hashes_per_second_fresh_memory: f64,
}

/// The password every measured hash is of.
const PASSWORD: &str = "a password of ordinary length";

/// Hashes per second with `threads` hashes running at once, in process, with nothing else running.
pub async fn hash_ceiling(args: &HashCeilingArgs) -> anyhow::Result<HashCeiling> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let fresh = {
        let args = args.clone();
        tokio::task::spawn_blocking(move || fresh_memory_rate(&args, threads)).await??
    };
    let reused = service_hasher_rate(args, threads).await?;
    Ok(HashCeiling {
        threads,
        memory_kib: args.memory_kib,
        iterations: args.iterations,
        parallelism: args.parallelism,
        hashes_per_second: reused,
        hashes_per_second_fresh_memory: fresh,
    })
}

/// The service's [`PasswordHasher`] with as many hashing threads as callers, at normal priority
/// and with room for every caller, so that nothing but the hashing itself limits the rate.
async fn service_hasher_rate(args: &HashCeilingArgs, threads: usize) -> anyhow::Result<f64> {
    let hasher = PasswordHasher::new(HashingSettings {
        memory_kib: args.memory_kib,
        iterations: args.iterations,
        parallelism: args.parallelism,
        concurrency: threads,
        queue: threads,
        priority: HashingPriority::Nice(0),
    })?;
    let password = Password::for_login("password", PASSWORD).map_err(|v| anyhow::anyhow!("{}", v.message))?;
    let start = Instant::now();
    let deadline = start + args.duration;
    let callers: Vec<_> = (0..threads)
        .map(|_| {
            let (hasher, password) = (hasher.clone(), password.clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    hasher.hash(&password).await?;
                    done += 1;
                }
                anyhow::Ok(done)
            })
        })
        .collect();
    let mut total = 0;
    for caller in callers {
        total += caller.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// argon2id at the same parameters on `threads` plain threads, letting argon2 allocate the
/// memory for every hash (`hash_password_into` does), as a hasher without a pool would.
fn fresh_memory_rate(args: &HashCeilingArgs, threads: usize) -> anyhow::Result<f64> {
    let params = Params::new(args.memory_kib, args.iterations, args.parallelism, None)
        .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let start = Instant::now();
    let deadline = start + args.duration;
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let (salt, mut out) = ([7u8; 16], [0u8; 32]);
                    let mut done = 0;
                    while Instant::now() < deadline {
                        if argon2.hash_password_into(PASSWORD.as_bytes(), &salt, &mut out).is_err() {
                            break;
                        }
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

#[derive(Debug, Serialize)]
pub struct Startup {
    /// From spawning the process to the first SERVING health answer.
    pub seconds_to_serving: f64,
    /// Resident memory after idling.
    pub idle_rss_kib: u64,
}

/// Starts the binary on an empty database, times it to SERVING, lets it idle, reads its memory.
pub async fn startup(args: &StartupArgs) -> anyhow::Result<Startup> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let start = Instant::now();
    let mut child = Command::new(&args.binary)
        .env("DATABASE_URL", &args.database_url)
        .env("IDENTITYD_LISTEN", format!("127.0.0.1:{port}"))
        .env("IDENTITYD_BOOTSTRAP_TENANT", "Startup")
        .env("IDENTITYD_BOOTSTRAP_USER", "startup-admin")
        .env("IDENTITYD_BOOTSTRAP_PASSWORD", "startup-password")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", args.binary.display()))?;
    let target = format!("http://127.0.0.1:{port}");
    let deadline = start + Duration::from_secs(30);
    let serving = loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(target.clone())?.connect().await
            && let Ok(r) = HealthClient::new(channel)
                .check(HealthCheckRequest { service: String::new() })
                .await
            && r.get_ref().status == ServingStatus::Serving as i32
        {
            break start.elapsed();
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            let _ = child.kill();
            anyhow::bail!("the server did not become SERVING");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(args.idle).await;
    let idle_rss_kib = resident_kib(child.id()).unwrap_or(0);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    Ok(Startup {
        seconds_to_serving: serving.as_secs_f64(),
        idle_rss_kib,
    })
}
