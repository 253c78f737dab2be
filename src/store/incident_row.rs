//! An `incidents` row as both databases return it to a report (id as text, times as µs since
//! the epoch, regions as a JSON array), the SQL that selects it in each dialect, and its
//! conversion to the domain [`Incident`].

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{EndReason, FailureKind, Incident, IncidentKind};

/// The SQL that selects these rows in each database's dialect: `time` turns a column into µs,
/// `id` a uuid into text, `regions` the regions into a JSON array's text.
pub struct Dialect {
    pub time: fn(&str) -> String,
    pub id: fn(&str) -> String,
    pub regions: fn(&str) -> String,
}

impl Dialect {
    /// The columns of an [`IncidentRow`] from `incidents`.
    pub fn incident_columns(&self) -> String {
        let Dialect { time, id, regions } = self;
        format!(
            "{} AS incident_id, site_id, region, url, {} AS started_at, {} AS confirmed_at, \
             {} AS ended_at, {} AS regions, failure_kind, error, failed_checks, end_reason, incident_kind",
            id("incident_id"),
            time("started_at"),
            time("confirmed_at"),
            time("ended_at"),
            regions("regions"),
        )
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct IncidentRow {
    incident_id: String,
    site_id: String,
    region: Option<String>,
    url: String,
    started_at: i64,
    confirmed_at: i64,
    ended_at: Option<i64>,
    regions: String,
    failure_kind: Option<String>,
    error: Option<String>,
    failed_checks: i64,
    end_reason: Option<String>,
    incident_kind: String,
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl From<IncidentRow> for Incident {
    fn from(r: IncidentRow) -> Self {
        let started_at = time(r.started_at);
        Incident {
            incident_id: Uuid::parse_str(&r.incident_id)
                .unwrap_or_else(|_| Incident::id_for(&r.site_id, r.region.as_deref(), started_at)),
            // (A kind this build does not know, which only a newer one writes, reads as an outage.)
            kind: IncidentKind::parse(&r.incident_kind).unwrap_or_default(),
            started_at,
            confirmed_at: time(r.confirmed_at),
            ended_at: r.ended_at.map(time),
            end_reason: r.end_reason.and_then(|k| EndReason::parse(&k)),
            regions: serde_json::from_str(&r.regions).unwrap_or_default(),
            failure_kind: r.failure_kind.map(|k| FailureKind::parse(&k).unwrap_or(FailureKind::Other)),
            error: r.error,
            failed_checks: r.failed_checks,
            site_id: r.site_id,
            region: r.region,
            url: r.url,
        }
    }
}
