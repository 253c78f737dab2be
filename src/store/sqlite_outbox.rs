//! The `incident_events` outbox of [`SqliteStore`]: `sitemon run` is the only process using its
//! database, so no lock is needed. Times are integer microseconds, `regions` a JSON array.

use chrono::Utc;

use super::SqliteStore;
use super::event_row::{EventRow, pending_sql};
use super::sqlite_incidents::SQLITE;
use super::sqlite_tx::classify;
use crate::ports::{EventOutbox, PendingEvent, StoreError};

const UNPUBLISHED: &str = "SELECT count(*) FROM incident_events WHERE published_at IS NULL";

impl EventOutbox for SqliteStore {
    async fn pending(&self, max: usize) -> Result<Vec<PendingEvent>, StoreError> {
        let sql = pending_sql(&SQLITE, "?1");
        let rows: Vec<EventRow> = sqlx::query_as(&sql)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter().map(EventRow::into_pending).collect()
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
