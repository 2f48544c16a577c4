//! Revocations pushed by the database, where it can (Postgres): the validation cache forgets a
//! session as soon as the notification of its end arrives, and the 50 ms poll stands down while
//! the listening connection is up.
//!
//! The order on every (re)subscription closes the gap a lost connection leaves: subscribe first,
//! then read what ended meanwhile (the poll's look-back window covers longer than any cache entry
//! lives) and forget every user and tenant change (the poll cannot see those), and only then stop
//! polling. Notices that arrive during the catch-up wait in the subscription.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Identity;
use crate::store::{RevocationFeed, RevocationNotice};

/// How long to wait before subscribing again after a failure; the poll covers meanwhile.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

impl Identity {
    /// Follows `feed` for as long as the task runs, subscribing again whenever it fails.
    pub async fn follow_pushed_revocations(&self, mut feed: impl RevocationFeed) {
        // Whether a failure was reported: later ones are told by the lost connection's warning.
        let mut reported = false;
        loop {
            if let Err(e) = self.subscribe(&mut feed).await {
                self.revocations_pushed.store(false, Ordering::Release);
                if !reported {
                    tracing::warn!(error = %e, "cannot listen for pushed revocations; polling for them instead");
                    reported = true;
                }
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                continue;
            }
            // Once per subscription: at start, and after each loss.
            tracing::info!(again = reported, "listening for pushed revocations");
            let lost = loop {
                match feed.next().await {
                    Ok(notices) => self.forget_revoked(&notices),
                    Err(e) => break e,
                }
            };
            // The poll takes over from its next tick (50 ms at most).
            self.revocations_pushed.store(false, Ordering::Release);
            tracing::warn!(error = %lost, "lost the connection listening for revocations; polling until it is back");
            reported = true;
        }
    }

    /// Subscribes, catches up, and stands the poll down.
    async fn subscribe(&self, feed: &mut impl RevocationFeed) -> crate::store::StoreResult<()> {
        feed.subscribe().await?;
        self.read_ended_sessions().await?;
        self.store.changed_elsewhere();
        self.validation_cache.clear();
        self.revocations_pushed.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes pushed notices: forgets the sessions they name, or everything.
    fn forget_revoked(&self, notices: &[RevocationNotice]) {
        if notices.contains(&RevocationNotice::Everything) {
            self.store.changed_elsewhere();
            self.validation_cache.clear();
            return;
        }
        let ended: Vec<uuid::Uuid> = notices
            .iter()
            .filter_map(|n| match n {
                RevocationNotice::SessionEnded(id) => Some(*id),
                RevocationNotice::Everything => None,
            })
            .collect();
        self.store.ended_elsewhere(&ended);
        self.validation_cache.forget_sessions(&ended);
    }

    /// Whether revocations are being pushed to this instance right now (the poll is standing down).
    pub fn revocations_are_pushed(&self) -> bool {
        self.revocations_pushed.load(Ordering::Acquire)
    }
}
