//! When a session or a user access token may still be used.

use chrono::{DateTime, Utc};

use super::{Error, Identity, Result};
use crate::auth::AccessTokenSecret;
use crate::store::{AccessTokenLookup, SessionLookup, SessionRecord};

impl Identity {
    /// Checks a user access token and notes its use. A malformed one (its checksum catches any
    /// typo) is refused without a database query; unknown ones and those of disabled users are
    /// InvalidCredentials; expired and revoked ones say so, since only the token's holder can ask.
    pub(crate) async fn use_access_token(&self, raw: &str) -> Result<AccessTokenLookup> {
        let secret = AccessTokenSecret::parse(raw).ok_or(Error::InvalidCredentials)?;
        let lookup = self
            .store
            .lookup_access_token(secret.hash().as_bytes())
            .await?
            .ok_or(Error::InvalidCredentials)?;
        let now = self.clock.now();
        check_token_usable(&lookup, now)?;
        self.token_last_use.touch(lookup.token_id, now);
        Ok(lookup)
    }

    /// Whether a looked-up session may be used at `now`: not ended, not past its absolute expiry,
    /// not idle too long, and its user not disabled. A service-account session has no idle
    /// timeout: the automation it serves may call rarely, and its expiry was chosen on purpose.
    pub(crate) fn is_live(&self, lookup: &SessionLookup, now: DateTime<Utc>) -> bool {
        let Some(user) = &lookup.user else {
            return lookup.session.end_time.is_none() && now < lookup.session.expire_time;
        };
        !user.disabled && self.session_is_live(&lookup.session, now)
    }

    /// Whether a session, its user aside, may be used at `now`: not ended, not past its absolute
    /// expiry, and not idle for longer than its kind allows (an impersonation less long).
    pub(crate) fn session_is_live(&self, session: &SessionRecord, now: DateTime<Utc>) -> bool {
        let last_use = self
            .last_use
            .pending(session.session_id)
            .map_or(session.last_use_time, |pending| pending.max(session.last_use_time));
        let idle_timeout = if session.impersonator_user_id.is_some() {
            self.sessions.impersonation_idle_timeout
        } else {
            self.sessions.idle_timeout
        };
        session.end_time.is_none() && now < session.expire_time && now < last_use + idle_timeout
    }
}

fn check_token_usable(token: &AccessTokenLookup, now: DateTime<Utc>) -> Result<()> {
    if token.user.disabled {
        return Err(Error::InvalidCredentials);
    }
    if token.revoke_time.is_some() {
        return Err(Error::TokenRevoked);
    }
    if token.expire_time.is_some_and(|end| now >= end) {
        return Err(Error::TokenExpired);
    }
    Ok(())
}
