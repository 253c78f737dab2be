//! [`PgStore`]: PostgreSQL storage with sqlx. One transaction per batch (`batch.rs`, over
//! PostgreSQL's primitives in `pg_history.rs` and `pg_incidents.rs`); daily history partitions
//! are created ahead of the rows.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::sync::Mutex;

use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use super::batch;
use super::pg_reach::{self, SetupError, Unreachable};
use super::pg_tx::{NO_PARTITION, PgTx, classify};
use super::status_row::StatusRow;
use crate::config::PostgresConfig;
use crate::domain::{CheckResult, Incident, Judging, SiteStatus};
use crate::ports::{DeadLetter, StatusStore, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pub(super) pool: PgPool,
    opts: PgConnectOptions,
    partitions: Mutex<HashSet<NaiveDate>>,
    judging: Judging,
}

/// DDL on the partitioned table locks its parent: waiting longer than this behind a reader (a
/// dump, a long report) would stall every consumer's inserts queued behind the DDL.
const DDL_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '5s'";

/// Runs one DDL statement in its own transaction under [`DDL_LOCK_TIMEOUT`].
async fn ddl(pool: &PgPool, sql: &str) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(DDL_LOCK_TIMEOUT).execute(&mut *tx).await?;
    sqlx::query(sql).execute(&mut *tx).await?;
    tx.commit().await
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
            .connect_lazy_with(opts.clone());
        Ok(PgStore { pool, opts, partitions: Mutex::new(HashSet::new()), judging: Judging::default() })
    }

    /// Incidents judged with these time bounds (default: [`Judging::default`]).
    pub fn judging(mut self, judging: Judging) -> Self {
        self.judging = judging;
        self
    }

    /// Opens one connection to the server (within [`pg_reach::REACH_TIMEOUT`]): a server that
    /// cannot be used is named with the reason, once, before anything else is tried.
    pub async fn reach(&self) -> Result<(), Unreachable> {
        pg_reach::reach(&self.opts).await
    }

    /// Reaches the server, applies the embedded migrations (a no-op when they are all applied)
    /// and creates the history partitions for today and tomorrow.
    pub async fn migrate(&self) -> Result<(), SetupError> {
        self.reach().await?;
        MIGRATOR.run(&self.pool).await.map_err(SetupError::Migrations)?;
        let today = chrono::Utc::now().date_naive();
        for day in [Some(today), today.checked_add_days(Days::new(1))].into_iter().flatten() {
            create_partition(&self.pool, day)
                .await
                .map_err(|source| SetupError::Partition { day, source })?;
            self.partitions.lock().expect("partition cache lock").insert(day);
        }
        Ok(())
    }

    /// The one transaction of [`StatusStore::store`].
    async fn store_batch(&self, results: Vec<&CheckResult>, dead: &[DeadLetter]) -> Result<(), StoreError> {
        self.ensure_partitions(&results).await?;
        let mut tx = self.pool.begin().await.map_err(classify)?;
        batch::store_batch(&mut PgTx(&mut tx), results, dead, &self.judging).await?;
        tx.commit().await.map_err(classify)
    }

    /// Creates the daily history partitions these results fall into (and the next day's).
    async fn ensure_partitions(&self, results: &[&CheckResult]) -> Result<(), StoreError> {
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
    let Some(next) = day.checked_add_days(Days::new(1)) else {
        return Err(StoreError::Rejected(format!("no history partition can hold {day}").into()));
    };
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS check_results_p{} PARTITION OF check_results \
         FOR VALUES FROM ('{} 00:00:00+00') TO ('{} 00:00:00+00')",
        day.format("%Y%m%d"),
        day.format("%Y-%m-%d"),
        next.format("%Y-%m-%d"),
    );
    match ddl(pool, &sql).await {
        Ok(()) => Ok(()),
        // Another consumer created it at the same moment.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P07") => Ok(()),
        Err(e) => Err(classify(e)),
    }
}

impl StatusStore for PgStore {
    /// One transaction: history (learning which rows are new), dead letters, and the latest
    /// status folded from the new rows only. History and status commit together, so a replay
    /// after a crash finds either both or neither.
    async fn store<R: Borrow<CheckResult> + Sync>(
        &self,
        results: &[R],
        dead: &[DeadLetter],
    ) -> Result<(), StoreError> {
        let results: Vec<&CheckResult> = results.iter().map(Borrow::borrow).collect();
        let stored = self.store_batch(results, dead).await;
        if let Err(StoreError::Unavailable(e)) = &stored
            && let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>()
            && db.code().as_deref() == Some(NO_PARTITION)
        {
            self.partitions.lock().expect("partition cache lock").clear();
        }
        stored
    }

    async fn latest(&self) -> Result<Vec<SiteStatus>, StoreError> {
        let rows: Vec<StatusRow> = sqlx::query_as(LATEST).fetch_all(&self.pool).await.map_err(classify)?;
        Ok(rows.into_iter().map(SiteStatus::from).collect())
    }

    async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        super::pg_incidents::open_incidents(&self.pool).await
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
                ddl(&self.pool, &sql).await.map_err(classify)?;
                self.partitions.lock().expect("partition cache lock").remove(&day);
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

const LATEST: &str = "SELECT s.site_id, s.region, s.url, s.status, s.failure_kind, s.error, s.status_code, \
     s.total_us, s.consecutive_failures, (extract(epoch FROM s.status_since) * 1000000)::bigint AS status_since, \
     (extract(epoch FROM s.scheduled_at) * 1000000)::bigint AS scheduled_at, s.interval_ms \
     FROM site_status s \
     ORDER BY s.site_id, s.region";

const PARTITIONS: &str = "SELECT c.relname::text FROM pg_inherits i \
     JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
     WHERE p.relname = 'check_results' ORDER BY 1";
