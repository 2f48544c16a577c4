use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Which audit events to list; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant_id: Option<Uuid>,
    /// Matches events where the user is the actor or the subject.
    pub user_id: Option<Uuid>,
    pub action: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}
