use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{LastUseOf, Store};

/// What a recorder keeps last-use times of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseOf {
    Sessions,
    AccessTokens,
}

/// Keeps last-use times (of sessions, or of access tokens) in memory and writes them to the store
/// in batches, so that using a credential never costs a database write.
#[derive(Clone)]
pub struct LastUseRecorder {
    of: UseOf,
    pending: Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>,
}

impl LastUseRecorder {
    pub fn new(of: UseOf) -> Self {
        Self {
            of,
            pending: Arc::default(),
        }
    }

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
        let written = match self.of {
            UseOf::Sessions => store.record_last_use(LastUseOf::Sessions, &batch).await,
            UseOf::AccessTokens => store.record_last_use(LastUseOf::AccessTokens, &batch).await,
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, of = ?self.of, count = batch.len(), "could not record last use; will retry");
            for (id, at) in batch {
                self.touch(id, at);
            }
        }
    }
}
