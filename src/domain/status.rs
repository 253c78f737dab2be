//! The latest known status of one site, as operators read it back from storage.

use chrono::{DateTime, Utc};

use super::{CheckStatus, FailureKind};

#[derive(Debug, Clone, PartialEq)]
pub struct SiteStatus {
    pub site_id: String,
    pub region: String,
    pub url: String,
    pub status: CheckStatus,
    pub failure_kind: Option<FailureKind>,
    pub error: Option<String>,
    pub status_code: Option<u16>,
    pub total_us: Option<i64>,
    pub consecutive_failures: i32,
    /// When the current up/down state began.
    pub status_since: DateTime<Utc>,
    /// Slot of the newest result.
    pub scheduled_at: DateTime<Utc>,
}
