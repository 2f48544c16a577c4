//! What every handler reads from a request besides its message: the bearer token and the peer.

use tonic::Request;
use uuid::Uuid;

use crate::core::{Caller, Error, Identity, RequestMeta};

/// The token in `authorization: Bearer <token>`, if the request carries one.
pub fn bearer<T>(request: &Request<T>) -> Option<&str> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub fn meta<T>(request: &Request<T>) -> RequestMeta {
    RequestMeta {
        peer: request.remote_addr().map(|a| a.to_string()),
    }
}

/// Authenticates the caller and splits the request into caller, metadata and message.
pub async fn authenticated<T>(identity: &Identity, request: Request<T>) -> Result<(Caller, RequestMeta, T), Error> {
    let caller = identity.authenticate(bearer(&request)).await?;
    let meta = meta(&request);
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
