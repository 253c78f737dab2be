//! [`SqliteStore`]: the embedded store behind `sitemon run`. Same tables and the same
//! idempotence rules as PostgreSQL, without partitions; times are integer microseconds.

use std::borrow::Borrow;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::batch;
use super::sqlite_tx::{SqliteTx, classify, us};
use super::status_row::StatusRow;
use crate::domain::{CheckResult, Incident, Judging, SiteStatus};
use crate::ports::{DeadLetter, StatusStore, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    judging: Judging,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Unavailable(e.into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await.map_err(classify)?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Unavailable(e.into()))?;
        Ok(SqliteStore { pool, judging: Judging::default() })
    }

    /// Incidents judged with these time bounds (default: [`Judging::default`]).
    pub fn judging(mut self, judging: Judging) -> Self {
        self.judging = judging;
        self
    }
}

impl StatusStore for SqliteStore {
    /// One transaction: history (learning which rows are new), the latest status folded from
    /// the new rows only (recomputed from the history for a site whose stored status is not
    /// older than all of them), dead letters.
    async fn store<R: Borrow<CheckResult> + Sync>(
        &self,
        results: &[R],
        dead: &[DeadLetter],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let results: Vec<&CheckResult> = results.iter().map(Borrow::borrow).collect();
        batch::store_batch(&mut SqliteTx(&mut tx), results, dead, &self.judging).await?;
        tx.commit().await.map_err(classify)
    }

    async fn latest(&self) -> Result<Vec<SiteStatus>, StoreError> {
        let rows: Vec<StatusRow> = sqlx::query_as(
            "SELECT s.site_id, s.region, s.url, s.status, s.failure_kind, s.error, s.status_code, s.total_us, \
             s.consecutive_failures, s.status_since, s.scheduled_at, s.interval_ms FROM site_status s \
             ORDER BY s.site_id, s.region",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows.into_iter().map(SiteStatus::from).collect())
    }

    async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        super::sqlite_incidents::open_incidents(&self.pool).await
    }

    async fn prune(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM check_results WHERE scheduled_at < ?")
            .bind(us(cutoff))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }
}
