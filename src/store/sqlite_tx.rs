//! [`SqliteTx`]: an SQLite transaction as the batch core sees it (the primitives are implemented
//! in `sqlite_history.rs` and `sqlite_incidents.rs`), how its errors are sorted, and its times
//! (integer microseconds since the epoch).

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use crate::ports::StoreError;

/// The batch's transaction. SQLite has one writer at a time: it holds every site.
pub struct SqliteTx<'c>(pub &'c mut SqliteConnection);

pub(super) fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        // Only the data itself is rejected: a constraint it breaks, a value too big or of the
        // wrong type. Anything else (busy, locked, full, I/O) passes and the batch is retried.
        sqlx::Error::Database(db)
            if !matches!(db.kind(), sqlx::error::ErrorKind::Other)
                || matches!(db.code().as_deref(), Some("18" | "20")) =>
        {
            StoreError::Rejected(e.into())
        }
        _ => StoreError::Unavailable(e.into()),
    }
}

pub(super) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}
