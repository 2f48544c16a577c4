use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One entry of the audit trail: something security-relevant that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub event_id: Uuid,
    pub time: DateTime<Utc>,
    /// A stable dotted name such as `login.succeeded`.
    pub action: String,
    pub tenant_id: Option<Uuid>,
    /// Who did it; `None` when unknown or done by the system.
    pub actor_user_id: Option<Uuid>,
    /// Whom it was done to.
    pub subject_user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub peer_address: Option<String>,
    /// Further facts as plain strings; never a secret.
    pub details: BTreeMap<String, String>,
}
