//! [`PgStore`]: PostgreSQL storage with sqlx. One transaction per batch, multi-row statements
//! over UNNEST arrays, history inserts that ignore duplicates, and an upsert of the latest status
//! that never moves backwards. Daily history partitions are created ahead of the rows.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool};

use super::pg_copy;
use super::status_row::StatusRow;
use super::{LatestRow, latest_per_site};
use crate::config::PostgresConfig;
use crate::domain::{CheckResult, SiteStatus};
use crate::ports::{DeadLetter, StatusStore, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    partitions: Mutex<HashSet<NaiveDate>>,
}

fn classify(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            // Class 08 (connection), 53 (resources), 57 (operator intervention: shutdown),
            // 40 (transaction rollback: serialization, deadlock) are passing conditions.
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if ["08", "53", "57", "40"].iter().any(|c| code.starts_with(c)) {
                StoreError::Unavailable(db.to_string())
            } else {
                StoreError::Rejected(db.to_string())
            }
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl PgStore {
    /// Connects lazily: the first query opens the first connection.
    pub fn connect(cfg: &PostgresConfig) -> Result<Self, sqlx::Error> {
        let opts: PgConnectOptions = cfg.url.expose().parse()?;
        let opts = opts.application_name("sitemon").log_statements(tracing::log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            // No ping before each use: a dead connection fails its statement, which the
            // consumer retries as `Unavailable` like any other outage.
            .test_before_acquire(false)
            .connect_lazy_with(opts);
        Ok(PgStore { pool, partitions: Mutex::new(HashSet::new()) })
    }

    /// Applies the embedded migrations (a no-op when they are all applied) and creates the
    /// history partitions for today and tomorrow.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await?;
        let today = chrono::Utc::now().date_naive();
        for day in [Some(today), today.checked_add_days(Days::new(1))].into_iter().flatten() {
            create_partition(&self.pool, day)
                .await
                .map_err(|e| sqlx::migrate::MigrateError::Execute(sqlx::Error::Protocol(e.to_string())))?;
            self.partitions.lock().expect("partition cache lock").insert(day);
        }
        Ok(())
    }

    /// Creates the daily history partitions these results fall into (and the next day's).
    async fn ensure_partitions(&self, results: &[CheckResult]) -> Result<(), StoreError> {
        let wanted: Vec<NaiveDate> = {
            let known = self.partitions.lock().expect("partition cache lock");
            let mut days: Vec<NaiveDate> = results
                .iter()
                .flat_map(|r| {
                    let d = r.scheduled_at.date_naive();
                    [Some(d), d.checked_add_days(Days::new(1))]
                })
                .flatten()
                .filter(|d| !known.contains(d))
                .collect();
            days.sort();
            days.dedup();
            days
        };
        for day in wanted {
            create_partition(&self.pool, day).await?;
            self.partitions.lock().expect("partition cache lock").insert(day);
        }
        Ok(())
    }
}

/// `check_results_pYYYYMMDD` for one UTC day. DDL cannot take bind parameters; the name and
/// bounds come from a date, never from input text.
async fn create_partition(pool: &PgPool, day: NaiveDate) -> Result<(), StoreError> {
    let next = day.checked_add_days(Days::new(1)).expect("date in range");
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS check_results_p{} PARTITION OF check_results \
         FOR VALUES FROM ('{} 00:00:00+00') TO ('{} 00:00:00+00')",
        day.format("%Y%m%d"),
        day.format("%Y-%m-%d"),
        next.format("%Y-%m-%d"),
    );
    match sqlx::query(&sql).execute(pool).await {
        Ok(_) => Ok(()),
        // Another consumer created it at the same moment.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P07") => Ok(()),
        Err(e) => Err(classify(e)),
    }
}

const INSERT_HISTORY: &str = r#"
INSERT INTO check_results (
    check_id, site_id, url, region, scheduled_at, started_at, status, failure_kind, error,
    status_code, http_version, remote_addr, dns_us, connect_us, tls_us, ttfb_us, total_us,
    body_bytes, pattern, pattern_matched, tls_not_after)
SELECT * FROM UNNEST(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
    $7::text[], $8::text[], $9::text[], $10::int[], $11::text[], $12::text[], $13::bigint[],
    $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::text[],
    $20::bool[], $21::timestamptz[])
ON CONFLICT (scheduled_at, check_id) DO NOTHING
"#;

/// Latest status in one statement over the batch's rows (one per site): sites seen for the
/// first time are inserted; stored rows are updated only by a newer `scheduled_at`. A run that
/// spans the whole batch continues the stored state (failure count grows, `status_since` stays).
/// The update joins the batch (hash join), so a batch of n sites costs O(n).
const UPSERT_STATUS: &str = r#"
WITH incoming AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::text[], $3::uuid[], $4::text[], $5::timestamptz[], $6::timestamptz[],
        $7::text[], $8::text[], $9::text[], $10::int[], $11::bigint[], $12::int[],
        $13::timestamptz[], $14::bool[])
    AS t(site_id, region, check_id, url, scheduled_at, started_at, status, failure_kind, error,
         status_code, total_us, run_len, run_start, whole)
), inserted AS (
    INSERT INTO site_status (
        site_id, region, check_id, url, scheduled_at, started_at, status, failure_kind, error,
        status_code, total_us, consecutive_failures, status_since, updated_at)
    SELECT site_id, region, check_id, url, scheduled_at, started_at, status, failure_kind, error,
           status_code, total_us, CASE WHEN status = 'SUCCESS' THEN 0 ELSE run_len END, run_start, now()
    FROM incoming
    ON CONFLICT (site_id, region) DO NOTHING
)
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
    consecutive_failures = CASE
        WHEN i.status = 'SUCCESS' THEN 0
        WHEN s.status <> 'SUCCESS' AND i.whole THEN s.consecutive_failures + i.run_len
        ELSE i.run_len END,
    status_since = CASE
        WHEN (s.status = 'SUCCESS') = (i.status = 'SUCCESS') AND i.whole THEN s.status_since
        ELSE i.run_start END,
    updated_at = now()
FROM incoming AS i
WHERE s.site_id = i.site_id AND s.region = i.region AND s.scheduled_at < i.scheduled_at
"#;

const INSERT_DEAD: &str = r#"
INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, record_key, payload, error)
SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::bytea[], $6::text[])
ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING
"#;

/// One array parameter: a field of every item.
fn col<'a, T, U>(items: &'a [T], f: impl Fn(&'a T) -> U) -> Vec<U> {
    items.iter().map(f).collect()
}

/// History rows, by binary COPY first: nothing of the batch is stored yet in the common case.
/// When COPY refuses the batch (a row already stored by a replay after a crash, or a value the
/// database rejects), the savepoint is rolled back and the rows go through
/// `INSERT … ON CONFLICT DO NOTHING`, which skips duplicates and reports rejected rows.
async fn append_history(tx: &mut PgConnection, rs: &[CheckResult]) -> Result<(), StoreError> {
    sqlx::query("SAVEPOINT history").execute(&mut *tx).await.map_err(classify)?;
    match copy_history(tx, rs).await {
        Ok(()) => return Ok(()),
        Err(sqlx::Error::Database(db)) => {
            tracing::debug!(error = %db, "COPY of history refused; inserting row by row");
            sqlx::query("ROLLBACK TO SAVEPOINT history").execute(&mut *tx).await.map_err(classify)?;
        }
        Err(e) => return Err(classify(e)),
    }
    sqlx::query(INSERT_HISTORY)
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
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    Ok(())
}

async fn copy_history(conn: &mut PgConnection, rs: &[CheckResult]) -> Result<(), sqlx::Error> {
    let data = pg_copy::encode(rs);
    let mut copy = conn.copy_in_raw(pg_copy::COPY_HISTORY).await?;
    if let Err(e) = copy.send(data).await {
        let _ = copy.abort("sending the rows failed").await;
        return Err(e);
    }
    copy.finish().await.map(drop)
}

/// The latest-status upsert for one batch's rows (one per site).
async fn upsert_latest(conn: &mut PgConnection, l: &[LatestRow<'_>]) -> Result<(), StoreError> {
    if l.is_empty() {
        return Ok(());
    }
    sqlx::query(UPSERT_STATUS)
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
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

/// History rows and dead letters.
async fn append(
    conn: &mut PgConnection,
    results: &[CheckResult],
    dead: &[DeadLetter],
) -> Result<(), StoreError> {
    if !results.is_empty() {
        append_history(conn, results).await?;
    }
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
    Ok(())
}

impl StatusStore for PgStore {
    /// With a pool of two or more connections, history (and dead letters) and the latest status
    /// are written in two transactions at once, so that PostgreSQL works on both with two
    /// backends; they commit only when both succeeded, history first. A crash between the two
    /// commits leaves the batch unacknowledged: its replay adds nothing to history (duplicates are
    /// skipped) and completes the latest status (which never moves backwards).
    async fn store(&self, results: &[CheckResult], dead: &[DeadLetter]) -> Result<(), StoreError> {
        self.ensure_partitions(results).await?;
        let latest = latest_per_site(results);
        if self.pool.options().get_max_connections() < 2 || latest.is_empty() {
            let mut tx = self.pool.begin().await.map_err(classify)?;
            append(&mut tx, results, dead).await?;
            upsert_latest(&mut tx, &latest).await?;
            return tx.commit().await.map_err(classify);
        }
        let (mut history, mut status) =
            tokio::try_join!(self.pool.begin(), self.pool.begin()).map_err(classify)?;
        tokio::try_join!(append(&mut history, results, dead), upsert_latest(&mut status, &latest))?;
        history.commit().await.map_err(classify)?;
        status.commit().await.map_err(classify)
    }

    async fn latest(&self) -> Result<Vec<SiteStatus>, StoreError> {
        let rows: Vec<StatusRow> = sqlx::query_as(LATEST).fetch_all(&self.pool).await.map_err(classify)?;
        Ok(rows.into_iter().map(SiteStatus::from).collect())
    }

    /// Drops whole daily partitions that end at or before the cutoff's day.
    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let names: Vec<String> =
            sqlx::query_scalar(PARTITIONS).fetch_all(&self.pool).await.map_err(classify)?;
        let mut dropped = 0;
        for name in names {
            let Some(day) = name
                .strip_prefix("check_results_p")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
            else {
                continue;
            };
            if day < cutoff.date_naive() {
                // The name comes from the catalog and matched check_results_pYYYYMMDD above.
                let sql = format!("DROP TABLE IF EXISTS check_results_p{}", day.format("%Y%m%d"));
                sqlx::query(&sql).execute(&self.pool).await.map_err(classify)?;
                self.partitions.lock().expect("partition cache lock").remove(&day);
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

const LATEST: &str = "SELECT site_id, region, url, status, failure_kind, error, status_code, total_us, \
     consecutive_failures, (extract(epoch FROM status_since) * 1000000)::bigint AS status_since, \
     (extract(epoch FROM scheduled_at) * 1000000)::bigint AS scheduled_at \
     FROM site_status ORDER BY site_id, region";

const PARTITIONS: &str = "SELECT c.relname::text FROM pg_inherits i \
     JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
     WHERE p.relname = 'check_results' ORDER BY 1";
