//! SQLite's incident primitives of the batch transaction (`sitemon run`; the fold itself is
//! `batch.rs`). SQLite has one writer at a time, so the transaction already holds every site.

use sqlx::SqlitePool;
use uuid::Uuid;

use super::batch::IncidentTx;
use super::incident_row::{Dialect, IncidentRow};
use super::sqlite_tx::{SqliteTx, classify, us};
use super::track_row::{Encoded, SiteRow};
use crate::domain::{Incident, IncidentEvent};
use crate::ports::StoreError;

pub(super) const SQLITE: Dialect =
    Dialect { time: |c| c.to_owned(), id: |c| c.to_owned(), regions: |c| c.to_owned() };

const WRITE_TRACKS: &str = "INSERT INTO site_tracks (site_id, tracks) VALUES (?1, ?2) \
    ON CONFLICT (site_id) DO UPDATE SET tracks = excluded.tracks";

const WRITE_INCIDENT: &str = "INSERT INTO incidents (incident_id, site_id, region, url, started_at, \
    confirmed_at, ended_at, regions, failure_kind, error, failed_checks, end_reason, incident_kind) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
    ON CONFLICT (incident_id) DO UPDATE SET ended_at = excluded.ended_at, regions = excluded.regions, \
      failed_checks = excluded.failed_checks, end_reason = excluded.end_reason";

const WRITE_EVENT: &str = "INSERT INTO incident_events (event_id, kind, at, incident_id, site_id, region, \
    url, started_at, confirmed_at, ended_at, regions, failure_kind, error, failed_checks, end_reason, \
    incident_kind, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
    ON CONFLICT (event_id) DO NOTHING";

fn regions_json(i: &Incident) -> String {
    serde_json::to_string(&i.regions).expect("strings serialize")
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// The incident's columns, in the order both `incidents` and `incident_events` list them.
fn bind_incident<'q>(q: Query<'q>, i: &'q Incident) -> Query<'q> {
    q.bind(i.incident_id.to_string())
        .bind(&i.site_id)
        .bind(&i.region)
        .bind(&i.url)
        .bind(us(i.started_at))
        .bind(us(i.confirmed_at))
        .bind(i.ended_at.map(us))
        .bind(regions_json(i))
        .bind(i.failure_kind.map(|k| k.as_str()))
        .bind(&i.error)
        .bind(i.failed_checks)
        .bind(i.end_reason.map(|r| r.as_str()))
        .bind(i.kind.as_str())
}

impl IncidentTx for SqliteTx<'_> {
    /// SQLite's one writer at a time already holds every site.
    async fn lock_tracks(&mut self, sites: &[&str]) -> Result<Vec<SiteRow>, StoreError> {
        let wanted = serde_json::to_string(sites).expect("strings serialize");
        sqlx::query_as(
            "SELECT site_id, tracks FROM site_tracks WHERE site_id IN (SELECT value FROM json_each(?1)) \
             ORDER BY site_id",
        )
        .bind(wanted)
        .fetch_all(&mut *self.0)
        .await
        .map_err(classify)
    }

    async fn incidents(&mut self, ids: &[Uuid]) -> Result<Vec<Incident>, StoreError> {
        let sql = format!(
            "SELECT {} FROM incidents WHERE incident_id IN (SELECT value FROM json_each(?1))",
            SQLITE.incident_columns()
        );
        let ids = serde_json::to_string(ids).expect("ids serialize");
        let rows: Vec<IncidentRow> =
            sqlx::query_as(&sql).bind(ids).fetch_all(&mut *self.0).await.map_err(classify)?;
        Ok(rows.into_iter().map(Incident::from).collect())
    }

    async fn write_tracks(&mut self, sites: &[Encoded<'_>]) -> Result<(), StoreError> {
        for s in sites {
            sqlx::query(WRITE_TRACKS)
                .bind(s.site_id)
                .bind(&s.tracks)
                .execute(&mut *self.0)
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn write_incidents(&mut self, incidents: &[Incident]) -> Result<(), StoreError> {
        for i in incidents {
            bind_incident(sqlx::query(WRITE_INCIDENT), i).execute(&mut *self.0).await.map_err(classify)?;
        }
        Ok(())
    }

    async fn write_events(&mut self, events: &[IncidentEvent]) -> Result<(), StoreError> {
        let now = us(chrono::Utc::now());
        for e in events {
            let q =
                sqlx::query(WRITE_EVENT).bind(e.event_id.to_string()).bind(e.kind.as_str()).bind(us(e.at));
            bind_incident(q, &e.incident).bind(now).execute(&mut *self.0).await.map_err(classify)?;
        }
        Ok(())
    }
}

/// The incidents still open, site-wide ones first, then by site and region.
pub(super) async fn open_incidents(pool: &SqlitePool) -> Result<Vec<Incident>, StoreError> {
    let sql = format!(
        "SELECT {} FROM incidents WHERE ended_at IS NULL ORDER BY region IS NOT NULL, site_id, region",
        SQLITE.incident_columns()
    );
    let rows: Vec<IncidentRow> = sqlx::query_as(&sql).fetch_all(pool).await.map_err(classify)?;
    Ok(rows.into_iter().map(Incident::from).collect())
}
