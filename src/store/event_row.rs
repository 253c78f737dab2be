//! An `incident_events` (outbox) row as both databases return it: its sequence, event id, kind
//! and time, and the incident as it was ([`IncidentRow`]'s columns, the outbox repeats them).

use chrono::DateTime;

use super::incident_row::Dialect;
use super::incident_row::IncidentRow;
use crate::domain::{EventKind, Incident, IncidentEvent};
use crate::ports::{PendingEvent, StoreError};

#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    seq: i64,
    event_id: String,
    kind: String,
    at: i64,
    #[sqlx(flatten)]
    incident: IncidentRow,
}

/// The unpublished events, oldest first, at most `$1` (`?1`) of them.
pub fn pending_sql(d: &Dialect, limit: &str) -> String {
    format!(
        "SELECT seq, {} AS event_id, kind, {} AS at, {} FROM incident_events \
         WHERE published_at IS NULL ORDER BY seq LIMIT {limit}",
        (d.id)("event_id"),
        (d.time)("at"),
        d.incident_columns(),
    )
}

impl EventRow {
    pub fn into_pending(self) -> Result<PendingEvent, StoreError> {
        let seq = self.seq;
        let bad = |what: String| StoreError::Rejected(format!("incident_events seq {seq}: {what}").into());
        Ok(PendingEvent {
            seq,
            event: IncidentEvent {
                event_id: self.event_id.parse().map_err(|e| bad(format!("event_id: {e}")))?,
                kind: EventKind::parse(&self.kind)
                    .ok_or_else(|| bad(format!("unknown kind `{}`", self.kind)))?,
                at: DateTime::from_timestamp_micros(self.at)
                    .ok_or_else(|| bad(format!("at: {} µs", self.at)))?,
                incident: Incident::from(self.incident),
            },
        })
    }
}
