//! What every handler reads from a request besides its message: the bearer token and the peer.

use tonic::Request;
use uuid::Uuid;

use crate::core::{Caller, Error, Identity, RequestMeta};

/// The token in `authorization: Bearer <token>` (the scheme in any case), or `None` when the request
/// carries no `authorization` metadata. Two `authorization` entries are refused rather than one
/// picked, and an entry that is not `Bearer` and a token is refused with what is expected.
pub fn bearer<T>(request: &Request<T>) -> Result<Option<&str>, Error> {
    let mut values = request.metadata().get_all("authorization").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::AmbiguousCredentials);
    }
    value
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .map(Some)
        .ok_or(Error::MalformedCredentials)
}

pub fn meta<T>(request: &Request<T>) -> RequestMeta {
    RequestMeta {
        peer: request.remote_addr().map(|a| a.to_string()),
        user_agent: request
            .metadata()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        device_name: None,
    }
}

/// Authenticates the caller and splits the request into caller, metadata and message.
pub async fn authenticated<T>(identity: &Identity, request: Request<T>) -> Result<(Caller, RequestMeta, T), Error> {
    let meta = meta(&request);
    let caller = identity.authenticate(bearer(&request)?, &meta).await?;
    Ok((caller, meta, request.into_inner()))
}

/// As [`authenticated`], for calls whose metadata is optional: no `authorization` entry is no
/// caller, and one that is given must be valid.
pub async fn optional_caller<T>(
    identity: &Identity,
    request: Request<T>,
) -> Result<(Option<Caller>, RequestMeta, T), Error> {
    let meta = meta(&request);
    let caller = match bearer(&request)? {
        Some(token) => Some(identity.authenticate(Some(token), &meta).await?),
        None => None,
    };
    Ok((caller, meta, request.into_inner()))
}

/// Parses a required id field.
pub fn parse_id(field: &str, raw: &str) -> Result<Uuid, Error> {
    if raw.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Uuid::parse_str(raw).map_err(|_| Error::invalid(field, "must be an id as returned by this server"))
}

/// Parses an optional id field: empty means none.
pub fn parse_optional_id(field: &str, raw: &str) -> Result<Option<Uuid>, Error> {
    if raw.is_empty() {
        Ok(None)
    } else {
        parse_id(field, raw).map(Some)
    }
}
