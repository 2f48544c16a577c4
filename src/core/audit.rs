use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::AuditEvent;

/// What the transport knows about a request that is worth keeping in the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The peer's address as the server saw it.
    pub peer: Option<String>,
    /// The client's `user-agent`, as sent; a new session keeps a bounded copy.
    pub user_agent: Option<String>,
    /// The device name a login request gave (already checked); a new session keeps it.
    pub device_name: Option<String>,
}

/// Builds one audit event. Details are plain strings and never secrets.
pub(crate) struct Audit(AuditEvent);

impl Audit {
    pub(crate) fn new(action: &str, at: DateTime<Utc>, meta: &RequestMeta) -> Self {
        Self(AuditEvent {
            event_id: Uuid::now_v7(),
            time: at,
            action: action.to_owned(),
            tenant_id: None,
            actor_user_id: None,
            subject_user_id: None,
            session_id: None,
            peer_address: meta.peer.clone(),
            details: Default::default(),
        })
    }

    pub(crate) fn tenant(mut self, id: Uuid) -> Self {
        self.0.tenant_id = Some(id);
        self
    }

    pub(crate) fn actor(mut self, id: Uuid) -> Self {
        self.0.actor_user_id = Some(id);
        self
    }

    pub(crate) fn subject(mut self, id: Uuid) -> Self {
        self.0.subject_user_id = Some(id);
        self
    }

    pub(crate) fn session(mut self, id: Uuid) -> Self {
        self.0.session_id = Some(id);
        self
    }

    pub(crate) fn detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.details.insert(key.to_owned(), value.into());
        self
    }

    pub(crate) fn build(self) -> AuditEvent {
        self.0
    }
}
