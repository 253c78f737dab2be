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
    /// The site's check interval as its newest results said (none before schema v3).
    pub interval_ms: Option<i64>,
}

impl SiteStatus {
    /// Stale: the newest result is older than twice the site's interval — its producer stopped,
    /// or its results are not getting through.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.interval_ms.is_some_and(|ms| (now - self.scheduled_at).num_milliseconds() > ms.saturating_mul(2))
    }
}
