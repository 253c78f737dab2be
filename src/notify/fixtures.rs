//! Events for the unit tests of the alerting logic.

use chrono::{DateTime, TimeZone, Utc};

use crate::domain::{EventKind, Incident, IncidentEvent};

/// `secs` after a fixed moment.
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

/// An event of `site`'s incident (started and confirmed at `t(0)`; a closing ends at `t(at)`),
/// read at `t(at)`.
pub fn event(site: &str, region: Option<&str>, kind: EventKind, at: i64) -> IncidentEvent {
    let mut incident = Incident::sample(site, region, t(0));
    if kind == EventKind::Closed {
        incident.ended_at = Some(t(at));
    }
    IncidentEvent::new(kind, t(at), &incident)
}
