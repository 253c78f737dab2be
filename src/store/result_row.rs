//! A `check_results` row as both databases return it to a report (check id as text, times as
//! µs since the epoch), and its conversion to the domain [`CheckResult`].

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{CheckResult, CheckStatus, FailureKind};

#[derive(Debug, sqlx::FromRow)]
pub struct ResultRow {
    check_id: String,
    site_id: String,
    url: String,
    region: String,
    scheduled_at: i64,
    started_at: i64,
    status: String,
    failure_kind: Option<String>,
    error: Option<String>,
    status_code: Option<i32>,
    http_version: Option<String>,
    remote_addr: Option<String>,
    dns_us: Option<i64>,
    connect_us: Option<i64>,
    tls_us: Option<i64>,
    ttfb_us: Option<i64>,
    total_us: Option<i64>,
    body_bytes: Option<i64>,
    pattern: Option<String>,
    pattern_matched: Option<bool>,
    tls_not_after: Option<i64>,
    missed_since: Option<i64>,
    missed_slots: Option<i32>,
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl From<ResultRow> for CheckResult {
    fn from(r: ResultRow) -> Self {
        let status = CheckStatus::parse(&r.status).unwrap_or(CheckStatus::Failure);
        let mut c =
            CheckResult::new(&r.site_id, &r.url, &r.region, time(r.scheduled_at), time(r.started_at), status);
        if let Ok(id) = Uuid::parse_str(&r.check_id) {
            c.check_id = id;
        }
        c.failure_kind = r.failure_kind.map(|k| FailureKind::parse(&k).unwrap_or(FailureKind::Other));
        c.error = r.error;
        c.status_code = r.status_code.and_then(|s| u16::try_from(s).ok());
        c.http_version = r.http_version;
        c.remote_addr = r.remote_addr;
        (c.dns_us, c.connect_us, c.tls_us, c.ttfb_us, c.total_us, c.body_bytes) =
            (r.dns_us, r.connect_us, r.tls_us, r.ttfb_us, r.total_us, r.body_bytes);
        c.pattern = r.pattern;
        c.pattern_matched = r.pattern_matched;
        c.tls_not_after = r.tls_not_after.map(time);
        c.missed_since = r.missed_since.map(time);
        c.missed_slots = r.missed_slots.and_then(|n| u32::try_from(n).ok());
        c
    }
}
