use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::Store;

/// Keeps sessions' last-use times in memory and writes them to the store in batches, so that
/// validating a session never costs a database write.
#[derive(Clone, Default)]
pub struct LastUseRecorder {
    pending: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>,
}

impl LastUseRecorder {
    /// Notes that a session was used at `at`.
    pub fn touch(&self, session_id: Uuid, at: DateTime<Utc>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(session_id).or_insert(at);
        if *entry < at {
            *entry = at;
        }
    }

    /// The newest use noted and not yet written, if any.
    pub fn pending(&self, session_id: Uuid) -> Option<DateTime<Utc>> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&session_id)
            .copied()
    }

    /// Writes every pending use in one batch. On failure the batch is put back, to be tried again.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<(Uuid, DateTime<Utc>)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.record_session_use(&batch).await {
            tracing::warn!(error = %e, sessions = batch.len(), "could not record session use; will retry");
            for (id, at) in batch {
                self.touch(id, at);
            }
        }
    }
}
