//! PostgreSQL's incident primitives of the batch transaction (the fold itself is `batch.rs`): a
//! site's tracks row is its lock, and tracks, incidents and outbox events are written with one
//! statement each.

use std::collections::HashSet;

use sqlx::PgPool;
use uuid::Uuid;

use super::batch::IncidentTx;
use super::incident_row::{Dialect, IncidentRow};
use super::pg_tx::{PgTx, classify, col};
use super::track_row::{Encoded, SiteRow};
use crate::domain::{Incident, IncidentEvent};
use crate::ports::StoreError;

pub(super) const PG: Dialect = Dialect {
    time: |c| format!("(extract(epoch FROM {c}) * 1000000)::bigint"),
    id: |c| format!("{c}::text"),
    regions: |c| format!("array_to_json({c})::text"),
};

/// The sites' tracks, locked in site order.
const LOCK_TRACKS: &str =
    "SELECT site_id, tracks FROM site_tracks WHERE site_id = ANY($1) ORDER BY site_id FOR UPDATE";

/// The rows of sites seen for the first time (another consumer may create them at the same
/// moment: then this waits for it and leaves its row).
const ENSURE_SITES: &str = "INSERT INTO site_tracks (site_id, tracks) \
    SELECT site_id, '[]' FROM UNNEST($1::text[]) AS u(site_id) ORDER BY 1 ON CONFLICT DO NOTHING";

/// Every site written back has its row (made, and locked, by `lock_tracks`).
const WRITE_TRACKS: &str = "UPDATE site_tracks t SET tracks = u.tracks \
    FROM UNNEST($1::text[], $2::text[]) AS u(site_id, tracks) WHERE t.site_id = u.site_id";

const WRITE_INCIDENTS: &str = r#"
INSERT INTO incidents (incident_id, site_id, region, url, started_at, confirmed_at, ended_at,
    regions, failure_kind, error, failed_checks, end_reason, incident_kind)
SELECT u.id, u.site_id, u.region, u.url, u.started_at, u.confirmed_at, u.ended_at,
    ARRAY(SELECT json_array_elements_text(u.regions::json)), u.failure_kind, u.error, u.failed, u.end_reason,
    u.incident_kind
FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
    $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[])
    AS u(id, site_id, region, url, started_at, confirmed_at, ended_at, regions, failure_kind, error, failed,
         end_reason, incident_kind)
ON CONFLICT (incident_id) DO UPDATE SET
    ended_at = excluded.ended_at, regions = excluded.regions, failed_checks = excluded.failed_checks,
    end_reason = excluded.end_reason
"#;

/// The events in their order: `seq` follows the order of the batch.
const WRITE_EVENTS: &str = r#"
INSERT INTO incident_events (event_id, kind, at, incident_id, site_id, region, url, started_at,
    confirmed_at, ended_at, regions, failure_kind, error, failed_checks, end_reason, incident_kind)
SELECT u.event_id, u.kind, u.at, u.incident_id, u.site_id, u.region, u.url, u.started_at, u.confirmed_at,
    u.ended_at, ARRAY(SELECT json_array_elements_text(u.regions::json)), u.failure_kind, u.error, u.failed,
    u.end_reason, u.incident_kind
FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::uuid[], $5::text[], $6::text[], $7::text[],
    $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[], $13::text[],
    $14::bigint[], $15::text[], $16::text[]) WITH ORDINALITY
    AS u(event_id, kind, at, incident_id, site_id, region, url, started_at, confirmed_at, ended_at, regions,
         failure_kind, error, failed, end_reason, incident_kind, n)
ORDER BY u.n
ON CONFLICT (event_id) DO NOTHING
"#;

fn regions_json(i: &Incident) -> String {
    serde_json::to_string(&i.regions).expect("strings serialize")
}

impl IncidentTx for PgTx<'_> {
    /// Every writer of a site first locks its row, made if missing: one writer of a site at a
    /// time, in one order. A row another writer changed while this one waited is read as that
    /// writer committed it.
    async fn lock_tracks(&mut self, sites: &[&str]) -> Result<Vec<SiteRow>, StoreError> {
        let conn = &mut *self.0;
        let mut rows: Vec<SiteRow> =
            sqlx::query_as(LOCK_TRACKS).bind(sites).fetch_all(&mut *conn).await.map_err(classify)?;
        if rows.len() < sites.len() {
            let have: HashSet<&str> = rows.iter().map(|r| r.site_id.as_str()).collect();
            let missing: Vec<&str> = sites.iter().copied().filter(|s| !have.contains(s)).collect();
            sqlx::query(ENSURE_SITES).bind(&missing).execute(&mut *conn).await.map_err(classify)?;
            let made: Vec<SiteRow> =
                sqlx::query_as(LOCK_TRACKS).bind(&missing).fetch_all(&mut *conn).await.map_err(classify)?;
            rows.extend(made);
        }
        Ok(rows)
    }

    async fn incidents(&mut self, ids: &[Uuid]) -> Result<Vec<Incident>, StoreError> {
        let sql = format!("SELECT {} FROM incidents WHERE incident_id = ANY($1)", PG.incident_columns());
        let rows: Vec<IncidentRow> =
            sqlx::query_as(&sql).bind(ids).fetch_all(&mut *self.0).await.map_err(classify)?;
        Ok(rows.into_iter().map(Incident::from).collect())
    }

    async fn write_tracks(&mut self, sites: &[Encoded<'_>]) -> Result<(), StoreError> {
        sqlx::query(WRITE_TRACKS)
            .bind(col(sites, |x| x.site_id))
            .bind(col(sites, |x| x.tracks.as_str()))
            .execute(&mut *self.0)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn write_incidents(&mut self, incidents: &[Incident]) -> Result<(), StoreError> {
        let all: Vec<&Incident> = incidents.iter().collect();
        bind_incidents(sqlx::query(WRITE_INCIDENTS), &all).execute(&mut *self.0).await.map_err(classify)?;
        Ok(())
    }

    async fn write_events(&mut self, events: &[IncidentEvent]) -> Result<(), StoreError> {
        let incidents: Vec<&Incident> = events.iter().map(|e| &e.incident).collect();
        let q = sqlx::query(WRITE_EVENTS)
            .bind(col(events, |e| e.event_id))
            .bind(col(events, |e| e.kind.as_str()))
            .bind(col(events, |e| e.at));
        bind_incidents(q, &incidents).execute(&mut *self.0).await.map_err(classify)?;
        Ok(())
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The incidents' columns, one array each, in the order both `incidents` and `incident_events`
/// list them.
fn bind_incidents<'q>(q: Query<'q>, all: &'q [&'q Incident]) -> Query<'q> {
    q.bind(col(all, |i| i.incident_id))
        .bind(col(all, |i| i.site_id.as_str()))
        .bind(col(all, |i| i.region.as_deref()))
        .bind(col(all, |i| i.url.as_str()))
        .bind(col(all, |i| i.started_at))
        .bind(col(all, |i| i.confirmed_at))
        .bind(col(all, |i| i.ended_at))
        .bind(col(all, |i| regions_json(i)))
        .bind(col(all, |i| i.failure_kind.map(|k| k.as_str())))
        .bind(col(all, |i| i.error.as_deref()))
        .bind(col(all, |i| i.failed_checks))
        .bind(col(all, |i| i.end_reason.map(|r| r.as_str())))
        .bind(col(all, |i| i.kind.as_str()))
}

/// The incidents still open, site-wide ones first, then by site and region.
pub(super) async fn open_incidents(pool: &PgPool) -> Result<Vec<Incident>, StoreError> {
    let sql = format!(
        "SELECT {} FROM incidents WHERE ended_at IS NULL ORDER BY region IS NOT NULL, site_id, region",
        PG.incident_columns()
    );
    let rows: Vec<IncidentRow> = sqlx::query_as(&sql).fetch_all(pool).await.map_err(classify)?;
    Ok(rows.into_iter().map(Incident::from).collect())
}
