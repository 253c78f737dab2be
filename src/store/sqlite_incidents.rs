//! SQLite's incident primitives of the batch transaction (`sitemon run`; the fold itself is
//! `batch.rs`). SQLite has one writer at a time, so the transaction already holds every site.

use sqlx::SqlitePool;

use super::batch::IncidentTx;
use super::incident_row::IncidentRow;
use super::sqlite_tx::{SqliteTx, classify, us};
use super::track_row::{Dialect, TrackRow, conditions_json, pending_json};
use crate::domain::{Incident, IncidentEvent, Track};
use crate::ports::StoreError;

pub(super) const SQLITE: Dialect =
    Dialect { time: |c| c.to_owned(), id: |c| c.to_owned(), regions: |c| c.to_owned() };

const WRITE_TRACK: &str = "INSERT INTO incident_tracks (site_id, region, down, run_up, run_len, run_start, \
    run_kind, run_error, last_at, interval_ms, down_after, up_after, quorum, incident_id, seen_at, pending, \
    conditions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
    ON CONFLICT (site_id, region) DO UPDATE SET down = excluded.down, run_up = excluded.run_up, \
      run_len = excluded.run_len, run_start = excluded.run_start, run_kind = excluded.run_kind, \
      run_error = excluded.run_error, last_at = excluded.last_at, interval_ms = excluded.interval_ms, \
      down_after = excluded.down_after, up_after = excluded.up_after, quorum = excluded.quorum, \
      incident_id = excluded.incident_id, seen_at = excluded.seen_at, pending = excluded.pending, \
      conditions = excluded.conditions";

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
    async fn lock_sites(&mut self, _sites: &[&str]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn tracks(&mut self, sites: &[&str]) -> Result<Vec<TrackRow>, StoreError> {
        let select = format!(
            "SELECT {} FROM incident_tracks WHERE site_id IN (SELECT value FROM json_each(?1)) \
             ORDER BY site_id, region",
            SQLITE.track_columns()
        );
        let wanted = serde_json::to_string(sites).expect("strings serialize");
        sqlx::query_as(&select).bind(wanted).fetch_all(&mut *self.0).await.map_err(classify)
    }

    async fn incidents(&mut self, ids: &[String]) -> Result<Vec<Incident>, StoreError> {
        let sql = format!(
            "SELECT {} FROM incidents WHERE incident_id IN (SELECT value FROM json_each(?1))",
            SQLITE.incident_columns()
        );
        let ids = serde_json::to_string(ids).expect("strings serialize");
        let rows: Vec<IncidentRow> =
            sqlx::query_as(&sql).bind(ids).fetch_all(&mut *self.0).await.map_err(classify)?;
        Ok(rows.into_iter().map(Incident::from).collect())
    }

    async fn write_tracks(&mut self, tracks: &[(&str, &Track)]) -> Result<(), StoreError> {
        for (site, t) in tracks {
            sqlx::query(WRITE_TRACK)
                .bind(site)
                .bind(&t.region)
                .bind(t.down)
                .bind(t.run_up)
                .bind(t.run_len)
                .bind(t.run_start.map(us))
                .bind(t.run_kind.map(|k| k.as_str()))
                .bind(&t.run_error)
                .bind(t.last_at.map(us))
                .bind(t.interval_ms)
                .bind(t.down_after)
                .bind(t.up_after)
                .bind(t.quorum)
                .bind(t.incident.as_ref().map(|i| i.incident_id.to_string()))
                .bind(t.seen_at.map(us))
                .bind(pending_json(t))
                .bind(conditions_json(t))
                .execute(&mut *self.0)
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn delete_tracks(&mut self, sites: &[String], regions: &[String]) -> Result<(), StoreError> {
        for (site, region) in sites.iter().zip(regions) {
            sqlx::query("DELETE FROM incident_tracks WHERE site_id = ?1 AND region = ?2")
                .bind(site)
                .bind(region)
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
