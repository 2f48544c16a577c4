//! Offline verification of session JWTs: how many a service verifies per second with only the
//! JWKS, to set beside the ValidateSession rate of the same run.

use std::time::{Duration, Instant};

use anyhow::Context;
use identityd::grpc::pb;
use identityd::grpc::pb::login_service_client::LoginServiceClient;
use identityd::grpc::pb::session_service_client::SessionServiceClient;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::cli::JwtVerifyArgs;

/// The result of a verification run.
#[derive(Debug, serde::Serialize)]
pub struct JwtVerifyRate {
    /// Verifications per second over every thread.
    pub verifications_per_second: f64,
    pub threads: usize,
}

/// Logs in once, fetches the JWKS, then verifies the session JWT (signature, issuer, audience,
/// expiry) as fast as `threads` threads can for the duration.
pub async fn jwt_verify(args: &JwtVerifyArgs) -> anyhow::Result<JwtVerifyRate> {
    let channel = tonic::transport::Endpoint::from_shared(args.target.clone())?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.target))?;
    let login = LoginServiceClient::new(channel.clone())
        .login(pb::LoginRequest {
            user_name: args.user.clone(),
            password: args.password.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await
        .context("logging in")?
        .into_inner();
    let jwks = SessionServiceClient::new(channel)
        .get_jwks(pb::GetJwksRequest {})
        .await
        .context("GetJwks")?
        .into_inner();
    let set: JwkSet = serde_json::from_str(&jwks.jwks_json)?;
    let kid = jsonwebtoken::decode_header(&login.session_jwt)?
        .kid
        .context("the JWT names no key")?;
    let key = DecodingKey::from_jwk(set.find(&kid).context("the JWT's key is not in the JWKS")?)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&jwks.issuer]);
    validation.set_audience(&[&jwks.audience]);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let duration = args.duration;
    let jwt = login.session_jwt;
    let start = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut count = 0u64;
                    while start.elapsed() < duration {
                        jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &validation)
                            .expect("the session JWT verifies");
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a verifying thread"))
            .collect()
    });
    let elapsed = start.elapsed().max(Duration::from_millis(1));
    Ok(JwtVerifyRate {
        verifications_per_second: counts.iter().sum::<u64>() as f64 / elapsed.as_secs_f64(),
        threads,
    })
}
