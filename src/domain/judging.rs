//! What the incident derivation judges with: its time bounds (`Judging`) and each result as it
//! keeps it while the result's slot waits to be judged (`Sample`, stored as JSON).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{CheckResult, CheckStatus, FailureKind};

/// The time bounds of the derivation (`consumer.max_clock_skew`, `consumer.region_expiry`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judging {
    /// How far ahead of the consumer's clock a result may be (the admission rule). A slot waits
    /// for a live region that has not reported it until the site's newest result is this much
    /// plus three intervals past it, so a region running ahead by up to this much
    /// can never push a slot past the regions that report on time.
    pub max_skew: TimeDelta,
    /// A region without a result for this long (in the site's own time) is retired.
    pub region_expiry: TimeDelta,
}

impl Default for Judging {
    fn default() -> Self {
        Judging { max_skew: TimeDelta::minutes(2), region_expiry: TimeDelta::hours(1) }
    }
}

impl Judging {
    pub fn new(max_skew: std::time::Duration, region_expiry: std::time::Duration) -> Self {
        let d = |x: std::time::Duration| TimeDelta::from_std(x).unwrap_or(TimeDelta::MAX);
        Judging { max_skew: d(max_skew), region_expiry: d(region_expiry) }
    }
}

/// One result as the derivation needs it, kept while its slot waits to be judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub region: String,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub at: DateTime<Utc>,
    pub status: CheckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<FailureKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_after: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// What the DEGRADED and CERT_EXPIRING incidents judge by (schema v4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_us: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "chrono::serde::ts_microseconds_option"
    )]
    pub tls_not_after: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_above_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_warn_days: Option<u32>,
}

impl From<&CheckResult> for Sample {
    fn from(r: &CheckResult) -> Self {
        Sample {
            region: r.region.clone(),
            at: r.scheduled_at,
            status: r.status,
            failure_kind: r.failure_kind,
            error: r.error.clone(),
            url: r.url.clone(),
            interval_ms: r.interval_ms,
            down_after: r.down_after,
            up_after: r.up_after,
            quorum: r.quorum,
            total_us: r.total_us,
            tls_not_after: r.tls_not_after,
            degraded_above_ms: r.degraded_above_ms,
            cert_warn_days: r.cert_warn_days,
        }
    }
}
