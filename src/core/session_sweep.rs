//! Deleting sessions long past use. A session that expired or ended more than the retention
//! period ago can never be used again and is of no more interest to its owner's list; without the
//! sweep the sessions table would grow with every login forever. Audit events keep the history.

use super::Identity;

impl Identity {
    /// Deletes the sessions that expired or ended more than the retention period ago, a small
    /// batch per statement so that no statement holds locks for long, until none is left. Every
    /// instance runs it; two sweeps at once at worst pick the same rows, and one of them deletes
    /// each. Answers how many this sweep deleted; a store failure is logged and ends the sweep
    /// (the next one carries on).
    pub async fn sweep_old_sessions(&self) -> u64 {
        let started = std::time::Instant::now();
        let before = self.clock.now() - self.sessions.retention;
        let batch = i64::from(self.sessions.sweep_batch.max(1));
        let mut deleted = 0;
        loop {
            match self.store.delete_old_sessions(before, batch).await {
                Ok(n) => {
                    deleted += n;
                    if n < batch as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the session sweep stopped");
                    break;
                }
            }
            // Let the calls this instance serves go first between batches.
            tokio::task::yield_now().await;
        }
        if deleted > 0 {
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::info!(deleted, elapsed_ms, "deleted sessions past their retention");
        }
        deleted
    }
}
