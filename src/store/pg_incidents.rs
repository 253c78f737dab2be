//! Incidents in PostgreSQL, inside the batch's transaction: the tracks of the batch's sites are
//! locked, the new results folded into them (`domain::derive_incidents`), and tracks, incidents
//! and outbox events written back — so a replay, a second consumer or a restart derives each
//! incident and event exactly once.

use std::collections::HashSet;

use sqlx::{PgConnection, PgPool};

use super::incident_row::IncidentRow;
use super::pg::classify;
use super::track_row::{
    Dialect, TrackRow, changed, conditions_json, count, open_ids, pending_json, removed, site_tracks,
};
use crate::domain::{CheckResult, Incident, Judging, derive_incidents};
use crate::ports::StoreError;

pub(super) const PG: Dialect = Dialect {
    time: |c| format!("(extract(epoch FROM {c}) * 1000000)::bigint"),
    id: |c| format!("{c}::text"),
    regions: |c| format!("array_to_json({c})::text"),
};

/// The sites' own tracks (region ''), locked in site order.
const LOCK_SITES: &str = "SELECT site_id FROM incident_tracks WHERE site_id = ANY($1) AND region = '' \
    ORDER BY site_id FOR UPDATE";

/// The own tracks of sites seen for the first time (another consumer may create them at the same
/// moment: then this waits for it and leaves its row).
const ENSURE_SITES: &str = "INSERT INTO incident_tracks (site_id, region) \
    SELECT site_id, '' FROM UNNEST($1::text[]) AS u(site_id) ORDER BY 1 ON CONFLICT DO NOTHING";

const WRITE_TRACKS: &str = r#"
INSERT INTO incident_tracks (site_id, region, down, run_up, run_len, run_start, run_kind, run_error,
    last_at, interval_ms, down_after, up_after, quorum, incident_id, seen_at, pending, conditions)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::bool[], $5::int[], $6::timestamptz[],
    $7::text[], $8::text[], $9::timestamptz[], $10::bigint[], $11::int[], $12::int[], $13::int[],
    $14::uuid[], $15::timestamptz[], $16::text[], $17::text[])
ON CONFLICT (site_id, region) DO UPDATE SET
    down = excluded.down, run_up = excluded.run_up, run_len = excluded.run_len,
    run_start = excluded.run_start, run_kind = excluded.run_kind, run_error = excluded.run_error,
    last_at = excluded.last_at, interval_ms = excluded.interval_ms,
    down_after = excluded.down_after, up_after = excluded.up_after, quorum = excluded.quorum,
    incident_id = excluded.incident_id, seen_at = excluded.seen_at, pending = excluded.pending,
    conditions = excluded.conditions
"#;

/// Retired regions' tracks.
const DELETE_TRACKS: &str = "DELETE FROM incident_tracks t USING UNNEST($1::text[], $2::text[]) AS u(site_id, region) \
    WHERE t.site_id = u.site_id AND t.region = u.region";

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

const WRITE_EVENT: &str = r#"
INSERT INTO incident_events (event_id, kind, at, incident_id, site_id, region, url, started_at,
    confirmed_at, ended_at, regions, failure_kind, error, failed_checks, end_reason, incident_kind)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, ARRAY(SELECT json_array_elements_text($11::json)),
    $12, $13, $14, $15, $16)
ON CONFLICT (event_id) DO NOTHING
"#;

fn col<'a, T, U>(items: &'a [T], f: impl Fn(&'a T) -> U) -> Vec<U> {
    items.iter().map(f).collect()
}

fn regions_json(i: &Incident) -> String {
    serde_json::to_string(&i.regions).expect("strings serialize")
}

/// Folds the batch's new results into incidents, in the caller's transaction.
pub(super) async fn fold_incidents(
    conn: &mut PgConnection,
    new: &[&CheckResult],
    judging: &Judging,
) -> Result<(), StoreError> {
    let mut sites: Vec<&str> = new.iter().map(|r| r.site_id.as_str()).collect();
    if sites.is_empty() {
        return Ok(());
    }
    sites.sort_unstable();
    sites.dedup();
    // Every writer of a site first locks the site's own track (region ''), created if missing:
    // one writer of a site at a time, in one order.
    let locked: Vec<String> =
        sqlx::query_scalar(LOCK_SITES).bind(&sites).fetch_all(&mut *conn).await.map_err(classify)?;
    if locked.len() < sites.len() {
        let have: HashSet<&str> = locked.iter().map(String::as_str).collect();
        let missing: Vec<&str> = sites.iter().copied().filter(|s| !have.contains(s)).collect();
        sqlx::query(ENSURE_SITES).bind(&missing).execute(&mut *conn).await.map_err(classify)?;
        sqlx::query(LOCK_SITES).bind(&missing).execute(&mut *conn).await.map_err(classify)?;
    }
    // Then every track of those sites, read by a statement that starts after the locks are held:
    // what another writer of these sites committed, region tracks it created included.
    let select = format!(
        "SELECT {} FROM incident_tracks WHERE site_id = ANY($1) ORDER BY site_id, region",
        PG.track_columns()
    );
    let rows: Vec<TrackRow> =
        sqlx::query_as(&select).bind(&sites).fetch_all(&mut *conn).await.map_err(classify)?;
    let ids = open_ids(&rows);
    let open: Vec<IncidentRow> = if ids.is_empty() {
        Vec::new()
    } else {
        let sql =
            format!("SELECT {} FROM incidents WHERE incident_id = ANY($1::uuid[])", PG.incident_columns());
        sqlx::query_as(&sql).bind(&ids).fetch_all(&mut *conn).await.map_err(classify)?
    };
    let stored = site_tracks(rows, open.into_iter().map(Incident::from).collect());
    let mut tracks = stored.clone();
    let derived = derive_incidents(&mut tracks, new, judging);
    count(&derived);
    write_tracks(conn, &changed(&stored, &tracks)).await?;
    let (sites, regions) = removed(&stored, &tracks);
    if !sites.is_empty() {
        sqlx::query(DELETE_TRACKS).bind(&sites).bind(&regions).execute(&mut *conn).await.map_err(classify)?;
    }
    let incidents = &derived.incidents;
    if !incidents.is_empty() {
        sqlx::query(WRITE_INCIDENTS)
            .bind(col(incidents, |i| i.incident_id))
            .bind(col(incidents, |i| i.site_id.as_str()))
            .bind(col(incidents, |i| i.region.as_deref()))
            .bind(col(incidents, |i| i.url.as_str()))
            .bind(col(incidents, |i| i.started_at))
            .bind(col(incidents, |i| i.confirmed_at))
            .bind(col(incidents, |i| i.ended_at))
            .bind(col(incidents, regions_json))
            .bind(col(incidents, |i| i.failure_kind.map(|k| k.as_str())))
            .bind(col(incidents, |i| i.error.as_deref()))
            .bind(col(incidents, |i| i.failed_checks))
            .bind(col(incidents, |i| i.end_reason.map(|r| r.as_str())))
            .bind(col(incidents, |i| i.kind.as_str()))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
    }
    for e in &derived.events {
        let i = &e.incident;
        sqlx::query(WRITE_EVENT)
            .bind(e.event_id)
            .bind(e.kind.as_str())
            .bind(e.at)
            .bind(i.incident_id)
            .bind(&i.site_id)
            .bind(&i.region)
            .bind(&i.url)
            .bind(i.started_at)
            .bind(i.confirmed_at)
            .bind(i.ended_at)
            .bind(regions_json(i))
            .bind(i.failure_kind.map(|k| k.as_str()))
            .bind(&i.error)
            .bind(i.failed_checks)
            .bind(i.end_reason.map(|r| r.as_str()))
            .bind(i.kind.as_str())
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
    }
    if !derived.events.is_empty() {
        metrics::counter!("sitemon_incident_events_total").increment(derived.events.len() as u64);
    }
    Ok(())
}

async fn write_tracks(
    conn: &mut PgConnection,
    t: &[(&str, &crate::domain::Track)],
) -> Result<(), StoreError> {
    if t.is_empty() {
        return Ok(());
    }
    sqlx::query(WRITE_TRACKS)
        .bind(col(t, |x| x.0))
        .bind(col(t, |x| x.1.region.as_str()))
        .bind(col(t, |x| x.1.down))
        .bind(col(t, |x| x.1.run_up))
        .bind(col(t, |x| x.1.run_len))
        .bind(col(t, |x| x.1.run_start))
        .bind(col(t, |x| x.1.run_kind.map(|k| k.as_str())))
        .bind(col(t, |x| x.1.run_error.as_deref()))
        .bind(col(t, |x| x.1.last_at))
        .bind(col(t, |x| x.1.interval_ms))
        .bind(col(t, |x| x.1.down_after))
        .bind(col(t, |x| x.1.up_after))
        .bind(col(t, |x| x.1.quorum))
        .bind(col(t, |x| x.1.incident.as_ref().map(|i| i.incident_id)))
        .bind(col(t, |x| x.1.seen_at))
        .bind(col(t, |x| pending_json(x.1)))
        .bind(col(t, |x| conditions_json(x.1)))
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(())
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
