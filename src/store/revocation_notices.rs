//! Revocations pushed by the database: what a notice says, and the feed that delivers them.
//!
//! On Postgres, triggers send a notification on the channel [`CHANNEL`] when a change that ends a
//! session, or changes a user or tenant, commits (migration 0011 explains the payloads); an
//! instance listening on that channel learns of other instances' revocations within a round trip,
//! instead of at its next poll.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;

/// The channel the revocation triggers notify on.
pub const CHANNEL: &str = "identityd_revocations";

/// What a notification says has changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationNotice {
    /// A session ended.
    SessionEnded(Uuid),
    /// A user or tenant changed (or the payload was not understood): any cached validation may be wrong.
    Everything,
}

impl RevocationNotice {
    /// Reads a notification's payload. One not understood asks for everything to be forgotten:
    /// a notice is never ignored.
    pub fn parse(payload: &str) -> Self {
        payload
            .strip_prefix("s:")
            .and_then(|id| Uuid::parse_str(id).ok())
            .map_or(Self::Everything, Self::SessionEnded)
    }
}

/// A subscription to pushed revocations, over a connection of its own.
#[async_trait]
pub trait RevocationFeed: Send + 'static {
    /// (Re)subscribes: every notice committed after this returns is delivered by [`Self::next`]
    /// until it fails.
    async fn subscribe(&mut self) -> StoreResult<()>;

    /// Waits for the next notices (at least one; all that have arrived). An error means the
    /// subscription was lost and notices may have been missed: subscribe again.
    async fn next(&mut self) -> StoreResult<Vec<RevocationNotice>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_an_ended_session_or_ask_for_everything() {
        let id = Uuid::now_v7();
        assert_eq!(
            RevocationNotice::parse(&format!("s:{id}")),
            RevocationNotice::SessionEnded(id)
        );
        assert_eq!(RevocationNotice::parse("*"), RevocationNotice::Everything);
        assert_eq!(RevocationNotice::parse("s:nonsense"), RevocationNotice::Everything);
        assert_eq!(RevocationNotice::parse("future:thing"), RevocationNotice::Everything);
    }
}
