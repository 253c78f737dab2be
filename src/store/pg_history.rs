//! PostgreSQL's history and latest-status primitives of the batch transaction: history by
//! binary COPY (or inserts that skip duplicates), dead letters, and the latest status folded from
//! the rows that were new to the history.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::batch::{Fresh, HistoryTx};
use super::latest::LatestRow;
use super::pg_copy;
use super::pg_tx::{PgTx, classify, col};
use crate::domain::CheckResult;
use crate::ports::{DeadLetter, StoreError};

impl HistoryTx for PgTx<'_> {
    async fn append(&mut self, results: &[&CheckResult], dead: &[DeadLetter]) -> Result<Fresh, StoreError> {
        append(self.0, results, dead).await
    }

    async fn fold_latest(&mut self, rows: &[LatestRow<'_>]) -> Result<(), StoreError> {
        fold_latest(self.0, rows).await
    }
}

const INSERT_HISTORY: &str = r#"
INSERT INTO check_results (
    check_id, site_id, url, region, scheduled_at, started_at, status, failure_kind, error,
    status_code, http_version, remote_addr, dns_us, connect_us, tls_us, ttfb_us, total_us,
    body_bytes, pattern, pattern_matched, tls_not_after, missed_since, missed_slots)
SELECT * FROM UNNEST(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
    $7::text[], $8::text[], $9::text[], $10::int[], $11::text[], $12::text[], $13::bigint[],
    $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::text[],
    $20::bool[], $21::timestamptz[], $22::timestamptz[], $23::int[])
ON CONFLICT (scheduled_at, check_id) DO NOTHING
RETURNING scheduled_at, check_id
"#;

/// Latest status in one statement over the batch's new rows (one per site, each one that may be
/// shown): a stored row is continued only when
/// every new result of its site is newer than it and a result it passed over (`next_at`) is
/// still above the ceiling (a run that spans the whole batch continues the stored state:
/// failure count grows, `status_since` stays); the sites it did not continue are inserted if they
/// are new (tried only for those: a conflict check per stored row cost a fifth of the
/// statement). Returns the sites it handled; the others (a result older than
/// the stored status arrived, a passed-over result lies between, or another consumer inserted
/// the site meanwhile) are recomputed from the history. The update finds each row by the primary
/// key (a nested loop over the batch), so a batch of n sites costs O(n), whatever the table's size.
const UPSERT_STATUS: &str = r#"
WITH incoming AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::text[], $3::uuid[], $4::text[], $5::timestamptz[], $6::timestamptz[],
        $7::text[], $8::text[], $9::text[], $10::int[], $11::bigint[], $12::int[],
        $13::timestamptz[], $14::bool[], $15::timestamptz[], $16::timestamptz[], $17::bigint[])
    AS t(site_id, region, check_id, url, scheduled_at, started_at, status, failure_kind, error,
         status_code, total_us, run_len, run_start, whole, oldest, ceiling, interval_ms)
), updated AS (
UPDATE site_status AS s SET
    check_id = i.check_id,
    url = i.url,
    scheduled_at = i.scheduled_at,
    started_at = i.started_at,
    status = i.status,
    failure_kind = i.failure_kind,
    error = i.error,
    status_code = i.status_code,
    total_us = i.total_us,
    interval_ms = coalesce(i.interval_ms, s.interval_ms),
    consecutive_failures = CASE
        WHEN i.status = 'SUCCESS' THEN 0
        WHEN s.status <> 'SUCCESS' AND i.whole THEN s.consecutive_failures + i.run_len
        ELSE i.run_len END,
    status_since = CASE
        WHEN (s.status = 'SUCCESS') = (i.status = 'SUCCESS') AND i.whole THEN s.status_since
        ELSE i.run_start END,
    updated_at = now()
FROM incoming AS i
WHERE s.site_id = i.site_id AND s.region = i.region AND s.scheduled_at < i.oldest
  AND (s.next_at IS NULL OR s.next_at > i.ceiling)
RETURNING s.site_id, s.region
), inserted AS (
    INSERT INTO site_status (
        site_id, region, check_id, url, scheduled_at, started_at, status, failure_kind, error,
        status_code, total_us, interval_ms, consecutive_failures, status_since, updated_at)
    SELECT site_id, region, check_id, url, scheduled_at, started_at, status, failure_kind, error,
           status_code, total_us, interval_ms, CASE WHEN status = 'SUCCESS' THEN 0 ELSE run_len END,
           run_start, now()
    FROM incoming AS i
    WHERE NOT EXISTS (SELECT 1 FROM updated AS u WHERE u.site_id = i.site_id AND u.region = i.region)
    ON CONFLICT (site_id, region) DO NOTHING
    RETURNING site_id, region
)
SELECT site_id, region FROM updated UNION ALL SELECT site_id, region FROM inserted
"#;

/// Locks a site's latest status (if it exists) so that the recomputation below reads a history
/// that every other writer of this site has committed to.
const LOCK_STATUS: &str = "SELECT 1 FROM site_status WHERE site_id = $1 AND region = $2 FOR UPDATE";

/// The latest status of one site recomputed from its history: the newest non-MISSED result dated
/// no later than the ceiling `$4` (if any), the run of results in its up/down state since the newest
/// result in the other state, and the oldest result passed over (`next_at`). `$3` says whether
/// the row was locked by [`LOCK_STATUS`]; if it was not (first seen), a row that another
/// consumer inserted meanwhile is left alone and the caller tries again.
const RECOMPUTE_STATUS: &str = r#"
WITH n AS (
    SELECT * FROM check_results
    WHERE site_id = $1 AND region = $2 AND status <> 'MISSED'
      AND ($4::timestamptz IS NULL OR scheduled_at <= $4)
    ORDER BY scheduled_at DESC, check_id DESC LIMIT 1
), x AS (
    SELECT min(c.scheduled_at) AS at FROM check_results c, n
    WHERE c.site_id = $1 AND c.region = $2 AND c.status <> 'MISSED' AND c.scheduled_at > n.scheduled_at
), p AS (
    SELECT max(c.scheduled_at) AS at FROM check_results c, n
    WHERE c.site_id = $1 AND c.region = $2 AND c.status <> 'MISSED'
      AND (c.status = 'SUCCESS') <> (n.status = 'SUCCESS') AND c.scheduled_at < n.scheduled_at
), r AS (
    SELECT count(*)::int AS len, min(c.scheduled_at) AS since FROM check_results c, n, p
    WHERE c.site_id = $1 AND c.region = $2 AND c.status <> 'MISSED'
      AND c.scheduled_at > coalesce(p.at, '-infinity') AND c.scheduled_at <= n.scheduled_at
)
INSERT INTO site_status (
    site_id, region, check_id, url, scheduled_at, started_at, status, failure_kind, error,
    status_code, total_us, interval_ms, consecutive_failures, status_since, next_at, updated_at)
SELECT n.site_id, n.region, n.check_id, n.url, n.scheduled_at, n.started_at, n.status,
       n.failure_kind, n.error, n.status_code, n.total_us, $5::bigint,
       CASE WHEN n.status = 'SUCCESS' THEN 0 ELSE r.len END, r.since, x.at, now()
FROM n, r, x
ON CONFLICT (site_id, region) DO UPDATE SET
    check_id = excluded.check_id, url = excluded.url, scheduled_at = excluded.scheduled_at,
    started_at = excluded.started_at, status = excluded.status,
    failure_kind = excluded.failure_kind, error = excluded.error,
    status_code = excluded.status_code, total_us = excluded.total_us,
    interval_ms = coalesce(excluded.interval_ms, site_status.interval_ms),
    consecutive_failures = excluded.consecutive_failures, status_since = excluded.status_since,
    next_at = excluded.next_at, updated_at = now()
WHERE $3
"#;

const INSERT_DEAD: &str = r#"
INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, record_key, payload, error)
SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::bytea[], $6::text[])
ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING
"#;

/// History rows, by binary COPY first: nothing of the batch is stored yet in the common case.
/// When COPY refuses the batch (a row already stored by a replay, or a value the database
/// rejects), the savepoint is rolled back and the rows go through `INSERT … ON CONFLICT DO
/// NOTHING`, which skips duplicates, says which rows it inserted, and reports rejected rows.
async fn append_history(tx: &mut PgConnection, rs: &[&CheckResult]) -> Result<Fresh, StoreError> {
    sqlx::query("SAVEPOINT history").execute(&mut *tx).await.map_err(classify)?;
    match copy_history(tx, rs).await {
        Ok(()) => return Ok(Fresh::All),
        Err(sqlx::Error::Database(db)) => {
            tracing::debug!(error = %db, "COPY of history refused; inserting row by row");
            sqlx::query("ROLLBACK TO SAVEPOINT history").execute(&mut *tx).await.map_err(classify)?;
        }
        Err(e) => return Err(classify(e)),
    }
    let inserted: Vec<(DateTime<Utc>, Uuid)> = sqlx::query_as(INSERT_HISTORY)
        .bind(col(rs, |r| r.check_id))
        .bind(col(rs, |r| r.site_id.as_str()))
        .bind(col(rs, |r| r.url.as_str()))
        .bind(col(rs, |r| r.region.as_str()))
        .bind(col(rs, |r| r.scheduled_at))
        .bind(col(rs, |r| r.started_at))
        .bind(col(rs, |r| r.status.as_str()))
        .bind(col(rs, |r| r.failure_kind.map(|k| k.as_str())))
        .bind(col(rs, |r| r.error.as_deref()))
        .bind(col(rs, |r| r.status_code.map(i32::from)))
        .bind(col(rs, |r| r.http_version.as_deref()))
        .bind(col(rs, |r| r.remote_addr.as_deref()))
        .bind(col(rs, |r| r.dns_us))
        .bind(col(rs, |r| r.connect_us))
        .bind(col(rs, |r| r.tls_us))
        .bind(col(rs, |r| r.ttfb_us))
        .bind(col(rs, |r| r.total_us))
        .bind(col(rs, |r| r.body_bytes))
        .bind(col(rs, |r| r.pattern.as_deref()))
        .bind(col(rs, |r| r.pattern_matched))
        .bind(col(rs, |r| r.tls_not_after))
        .bind(col(rs, |r| r.missed_since))
        .bind(col(rs, |r| r.missed_slots.map(|n| i32::try_from(n).unwrap_or(i32::MAX))))
        .fetch_all(&mut *tx)
        .await
        .map_err(classify)?;
    Ok(Fresh::Only(inserted.into_iter().collect()))
}

async fn copy_history(conn: &mut PgConnection, rs: &[&CheckResult]) -> Result<(), sqlx::Error> {
    let data = pg_copy::encode(rs);
    let mut copy = conn.copy_in_raw(pg_copy::COPY_HISTORY).await?;
    if let Err(e) = copy.send(data).await {
        let _ = copy.abort("sending the rows failed").await;
        return Err(e);
    }
    copy.finish().await.map(drop)
}

/// Folds the batch's new rows into the latest status: one statement for the sites whose stored
/// status they simply continue, a recomputation from the history for the others.
async fn fold_latest(conn: &mut PgConnection, all: &[LatestRow<'_>]) -> Result<(), StoreError> {
    let (l, passed_over): (Vec<&LatestRow>, Vec<&LatestRow>) = all.iter().partition(|x| x.shown());
    for row in passed_over {
        recompute(conn, row).await?;
    }
    if l.is_empty() {
        return Ok(());
    }
    let l = l.as_slice();
    let handled: Vec<(String, String)> = sqlx::query_as(UPSERT_STATUS)
        .bind(col(l, |x| x.result.site_id.as_str()))
        .bind(col(l, |x| x.result.region.as_str()))
        .bind(col(l, |x| x.result.check_id))
        .bind(col(l, |x| x.result.url.as_str()))
        .bind(col(l, |x| x.result.scheduled_at))
        .bind(col(l, |x| x.result.started_at))
        .bind(col(l, |x| x.result.status.as_str()))
        .bind(col(l, |x| x.result.failure_kind.map(|k| k.as_str())))
        .bind(col(l, |x| x.result.error.as_deref()))
        .bind(col(l, |x| x.result.status_code.map(i32::from)))
        .bind(col(l, |x| x.result.total_us))
        .bind(col(l, |x| x.run_len))
        .bind(col(l, |x| x.run_start))
        .bind(col(l, |x| x.whole))
        .bind(col(l, |x| x.oldest))
        .bind(col(l, |x| x.ceiling))
        .bind(col(l, |x| x.result.interval_ms.map(i64::from)))
        .fetch_all(&mut *conn)
        .await
        .map_err(classify)?;
    if handled.len() == l.len() {
        return Ok(());
    }
    let handled: HashSet<(&str, &str)> = handled.iter().map(|(s, r)| (s.as_str(), r.as_str())).collect();
    for row in l.iter().filter(|x| !handled.contains(&(x.result.site_id.as_str(), x.result.region.as_str())))
    {
        recompute(conn, row).await?;
    }
    Ok(())
}

/// Recomputes one site's latest status from its history, under the row's lock.
async fn recompute(conn: &mut PgConnection, row: &LatestRow<'_>) -> Result<(), StoreError> {
    let (site, region) = (row.result.site_id.as_str(), row.result.region.as_str());
    for _ in 0..3 {
        let locked = sqlx::query(LOCK_STATUS)
            .bind(site)
            .bind(region)
            .fetch_optional(&mut *conn)
            .await
            .map_err(classify)?
            .is_some();
        let done = sqlx::query(RECOMPUTE_STATUS)
            .bind(site)
            .bind(region)
            .bind(locked)
            .bind(row.ceiling)
            .bind(row.result.interval_ms.map(i64::from))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        // Not locked and not inserted: another consumer inserted the site meanwhile; lock it now.
        if locked || done.rows_affected() > 0 {
            metrics::counter!(crate::metric::STATUS_RECOMPUTED).increment(1);
            return Ok(());
        }
    }
    // Neither inserted nor there to lock: the history holds nothing to show.
    Ok(())
}

/// History rows and dead letters; says which results were new.
async fn append(
    conn: &mut PgConnection,
    results: &[&CheckResult],
    dead: &[DeadLetter],
) -> Result<Fresh, StoreError> {
    let fresh = if results.is_empty() { Fresh::All } else { append_history(conn, results).await? };
    if !dead.is_empty() {
        sqlx::query(INSERT_DEAD)
            .bind(col(dead, |d| d.position.topic.as_str()))
            .bind(col(dead, |d| d.position.partition))
            .bind(col(dead, |d| d.position.offset))
            .bind(col(dead, |d| d.key.as_deref()))
            .bind(col(dead, |d| d.payload.as_deref()))
            .bind(col(dead, |d| d.error.as_str()))
            .execute(conn)
            .await
            .map_err(classify)?;
    }
    Ok(fresh)
}
