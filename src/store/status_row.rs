//! The `site_status` row as both databases return it (times as µs since the epoch), and its
//! conversion to the domain [`SiteStatus`].

use chrono::DateTime;

use crate::domain::{CheckStatus, FailureKind, SiteStatus};

#[derive(Debug, sqlx::FromRow)]
pub struct StatusRow {
    site_id: String,
    region: String,
    url: String,
    status: String,
    failure_kind: Option<String>,
    error: Option<String>,
    status_code: Option<i32>,
    total_us: Option<i64>,
    consecutive_failures: i32,
    status_since: i64,
    scheduled_at: i64,
    interval_ms: Option<i64>,
}

impl From<StatusRow> for SiteStatus {
    fn from(r: StatusRow) -> Self {
        SiteStatus {
            status: CheckStatus::parse(&r.status).unwrap_or(CheckStatus::Failure),
            failure_kind: r.failure_kind.map(|k| FailureKind::parse(&k).unwrap_or(FailureKind::Other)),
            status_code: r.status_code.and_then(|c| u16::try_from(c).ok()),
            status_since: DateTime::from_timestamp_micros(r.status_since).unwrap_or_default(),
            scheduled_at: DateTime::from_timestamp_micros(r.scheduled_at).unwrap_or_default(),
            site_id: r.site_id,
            region: r.region,
            url: r.url,
            error: r.error,
            total_us: r.total_us,
            consecutive_failures: r.consecutive_failures,
            interval_ms: r.interval_ms,
        }
    }
}
