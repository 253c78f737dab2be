//! The result of one check (or one missed slot): the record that travels through Kafka and
//! lands in storage. Field names match schemas/check_result.avsc and the SQL columns.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Outcome of a scheduled slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckStatus {
    Success,
    Failure,
    /// The slot could not start before the next one was due.
    Missed,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 3] = [CheckStatus::Success, CheckStatus::Failure, CheckStatus::Missed];

    /// The symbol used on the wire and in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Success => "SUCCESS",
            CheckStatus::Failure => "FAILURE",
            CheckStatus::Missed => "MISSED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Why a check failed. `Other` is the fallback for kinds a newer producer may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureKind {
    Timeout,
    Dns,
    Connect,
    Tls,
    Protocol,
    UnexpectedStatus,
    PatternNotFound,
    BodyTooLarge,
    RedirectLimit,
    Other,
}

impl FailureKind {
    pub const ALL: [FailureKind; 10] = [
        FailureKind::Timeout,
        FailureKind::Dns,
        FailureKind::Connect,
        FailureKind::Tls,
        FailureKind::Protocol,
        FailureKind::UnexpectedStatus,
        FailureKind::PatternNotFound,
        FailureKind::BodyTooLarge,
        FailureKind::RedirectLimit,
        FailureKind::Other,
    ];

    /// The symbol used on the wire (Avro enum) and in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "TIMEOUT",
            FailureKind::Dns => "DNS",
            FailureKind::Connect => "CONNECT",
            FailureKind::Tls => "TLS",
            FailureKind::Protocol => "PROTOCOL",
            FailureKind::UnexpectedStatus => "UNEXPECTED_STATUS",
            FailureKind::PatternNotFound => "PATTERN_NOT_FOUND",
            FailureKind::BodyTooLarge => "BODY_TOO_LARGE",
            FailureKind::RedirectLimit => "REDIRECT_LIMIT",
            FailureKind::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Longest failure message a result carries (bytes).
pub const MAX_ERROR_BYTES: usize = 1024;

/// One check of one site. Timings are microseconds; `None` where the phase did not happen.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub check_id: Uuid,
    pub site_id: String,
    pub url: String,
    pub region: String,
    pub scheduled_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub status: CheckStatus,
    pub failure_kind: Option<FailureKind>,
    pub error: Option<String>,
    pub status_code: Option<u16>,
    pub http_version: Option<String>,
    pub remote_addr: Option<String>,
    pub dns_us: Option<i64>,
    pub connect_us: Option<i64>,
    pub tls_us: Option<i64>,
    pub ttfb_us: Option<i64>,
    pub total_us: Option<i64>,
    pub body_bytes: Option<i64>,
    pub pattern: Option<String>,
    pub pattern_matched: Option<bool>,
    pub tls_not_after: Option<DateTime<Utc>>,
    /// sitemon version of the producer that wrote the record (schema v2; none before).
    pub producer_version: Option<String>,
    /// Redirects followed before the final response (schema v2; none before).
    pub redirects: Option<u32>,
    /// The site's check interval in milliseconds (schema v3): tells when a region went silent.
    pub interval_ms: Option<u32>,
    /// The site's incident thresholds (schema v3): consecutive failures that open an incident,
    /// consecutive successes that close it, and the regions that must agree (none: a majority).
    pub down_after: Option<u32>,
    pub up_after: Option<u32>,
    pub quorum: Option<u32>,
    /// A successful check slower than this (total time, ms) counts toward a DEGRADED incident
    /// (schema v4; none: the site has no such threshold).
    pub degraded_above_ms: Option<u32>,
    /// A certificate expiring within this many days opens a CERT_EXPIRING incident (schema v4;
    /// 0: never; none: [`DEFAULT_CERT_WARN_DAYS`](super::DEFAULT_CERT_WARN_DAYS)).
    pub cert_warn_days: Option<u32>,
    /// The site's slots missed just before this one, which have no record of their own (schema
    /// v5): the first one's time and how many there were, from then up to this slot. Under
    /// overload a producer carries its missed slots on the site's next record instead of one
    /// MISSED record each. None: no slot missed since the previous record.
    pub missed_since: Option<DateTime<Utc>>,
    pub missed_slots: Option<u32>,
}

impl CheckResult {
    /// A result with only identity and times filled in; the probe fills in the rest.
    pub fn new(
        site_id: &str,
        url: &str,
        region: &str,
        scheduled_at: DateTime<Utc>,
        started_at: DateTime<Utc>,
        status: CheckStatus,
    ) -> Self {
        CheckResult {
            check_id: super::check_id(site_id, region, scheduled_at),
            site_id: site_id.to_owned(),
            url: url.to_owned(),
            region: region.to_owned(),
            scheduled_at,
            started_at,
            status,
            failure_kind: None,
            error: None,
            status_code: None,
            http_version: None,
            remote_addr: None,
            dns_us: None,
            connect_us: None,
            tls_us: None,
            ttfb_us: None,
            total_us: None,
            body_bytes: None,
            pattern: None,
            pattern_matched: None,
            tls_not_after: None,
            producer_version: None,
            redirects: None,
            interval_ms: None,
            down_after: None,
            up_after: None,
            quorum: None,
            degraded_above_ms: None,
            cert_warn_days: None,
            missed_since: None,
            missed_slots: None,
        }
    }

    /// Marks the result failed with a kind and a short human message. Messages may quote what
    /// a server sent (a redirect's `Location`, a host name): they are cut to
    /// [`MAX_ERROR_BYTES`] and cleared of NUL characters, so every result the producer makes is
    /// one the consumer admits.
    pub fn fail(&mut self, kind: FailureKind, message: impl Into<String>) {
        self.status = CheckStatus::Failure;
        self.failure_kind = Some(kind);
        self.error = Some(super::storable_text(&message.into(), MAX_ERROR_BYTES));
    }

    pub fn is_up(&self) -> bool {
        self.status == CheckStatus::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_round_trip() {
        for k in FailureKind::ALL {
            assert_eq!(FailureKind::parse(k.as_str()), Some(k));
        }
        for s in CheckStatus::ALL {
            assert_eq!(CheckStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(FailureKind::parse("nope"), None);
    }
}
