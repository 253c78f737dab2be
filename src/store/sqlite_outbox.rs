//! The `incident_events` outbox of [`SqliteStore`]: `sitemon run` is the only process using its
//! database, so no lock is needed. Times are integer microseconds, `regions` a JSON array.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SqliteStore;
use super::sqlite::classify;
use crate::domain::{EventKind, FailureKind, Incident, IncidentEvent};
use crate::ports::{EventOutbox, PendingEvent, StoreError};

const PENDING: &str = "SELECT seq, event_id, kind, at, incident_id, site_id, region, url, started_at, \
    confirmed_at, ended_at, regions, failure_kind, error, failed_checks \
    FROM incident_events WHERE published_at IS NULL ORDER BY seq LIMIT ?";

const UNPUBLISHED: &str = "SELECT count(*) FROM incident_events WHERE published_at IS NULL";

#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    event_id: String,
    kind: String,
    at: i64,
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
}

impl EventRow {
    fn into_pending(self) -> Result<PendingEvent, String> {
        let time =
            |us: i64| DateTime::<Utc>::from_timestamp_micros(us).ok_or(format!("{us} µs is out of range"));
        let uuid = |s: &str| Uuid::parse_str(s).map_err(|e| format!("`{s}`: {e}"));
        Ok(PendingEvent {
            seq: self.seq,
            event: IncidentEvent {
                event_id: uuid(&self.event_id)?,
                kind: EventKind::parse(&self.kind).ok_or("unknown kind")?,
                at: time(self.at)?,
                incident: Incident {
                    incident_id: uuid(&self.incident_id)?,
                    site_id: self.site_id,
                    region: self.region,
                    url: self.url,
                    started_at: time(self.started_at)?,
                    confirmed_at: time(self.confirmed_at)?,
                    ended_at: self.ended_at.map(time).transpose()?,
                    regions: serde_json::from_str(&self.regions).map_err(|e| format!("regions: {e}"))?,
                    failure_kind: self
                        .failure_kind
                        .map(|k| FailureKind::parse(&k).unwrap_or(FailureKind::Other)),
                    error: self.error,
                    failed_checks: self.failed_checks,
                },
            },
        })
    }
}

impl EventOutbox for SqliteStore {
    async fn pending(&self, max: usize) -> Result<Vec<PendingEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(PENDING)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|r| {
                let seq = r.seq;
                r.into_pending()
                    .map_err(|e| StoreError::Rejected(format!("incident_events seq {seq}: {e}").into()))
            })
            .collect()
    }

    async fn mark_published(&self, seqs: &[i64]) -> Result<(), StoreError> {
        let now = Utc::now().timestamp_micros();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        for seq in seqs {
            sqlx::query("UPDATE incident_events SET published_at = ? WHERE seq = ? AND published_at IS NULL")
                .bind(now)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn unpublished(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(UNPUBLISHED).fetch_one(&self.pool).await.map_err(classify)?;
        Ok(n.max(0) as u64)
    }
}
