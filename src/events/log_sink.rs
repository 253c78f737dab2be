//! [`LogSink`]: incident events as log lines, for `sitemon run` (no Kafka there): each one
//! info line, `incident opened` or `incident closed`, with the site, region and times.

use crate::domain::{EventKind, IncidentEvent};
use crate::ports::{EventSink, PublishError};

pub struct LogSink;

impl EventSink for LogSink {
    async fn publish(&self, e: &IncidentEvent) -> Result<(), PublishError> {
        let i = &e.incident;
        // The site as a whole has no region of its own: `*`, with the regions that agreed.
        let region = i.region.as_deref().unwrap_or("*");
        let regions = i.regions.join(",");
        let kind = i.failure_kind.map(|k| k.as_str());
        let ended_at = i.ended_at.map(|t| t.to_rfc3339());
        match e.kind {
            EventKind::Opened => tracing::info!(
                site = %i.site_id, region = %region, regions = %regions, started_at = %i.started_at.to_rfc3339(),
                failure_kind = kind, error = i.error.as_deref(), event_id = %e.event_id,
                "incident opened"
            ),
            EventKind::Closed => tracing::info!(
                site = %i.site_id, region = %region, regions = %regions, started_at = %i.started_at.to_rfc3339(),
                ended_at, failed_checks = i.failed_checks, event_id = %e.event_id,
                "incident closed"
            ),
        }
        Ok(())
    }
}
