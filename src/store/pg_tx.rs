//! [`PgTx`]: a PostgreSQL transaction as the batch core sees it (the primitives are implemented
//! in `pg_history.rs` and `pg_incidents.rs`), and how its errors are sorted: rejected data or a
//! database that is not available.

use sqlx::PgConnection;

use crate::ports::StoreError;

/// The batch's transaction.
pub struct PgTx<'c>(pub &'c mut PgConnection);

pub(super) fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            // Only the data itself is rejected: class 22 (data exception) and 23 (integrity:
            // a value a constraint refuses). Everything else — connections, resources, shutdown,
            // serialization and deadlocks, lock timeouts, a read-only replica after a failover,
            // a pooler's prepared-statement trouble — passes, so the batch is retried, never
            // dead-lettered for the database's sake.
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if (code.starts_with("22") || code.starts_with("23")) && code != NO_PARTITION {
                StoreError::Rejected(e.into())
            } else {
                StoreError::Unavailable(e.into())
            }
        }
        _ => StoreError::Unavailable(e.into()),
    }
}

/// "No partition of relation found for row": a partition this process believed existed is gone
/// (dropped by hand, or a restored database); the cache is cleared and the batch retried.
pub(super) const NO_PARTITION: &str = "23514";

/// One array parameter: a field of every item.
pub(super) fn col<'a, T, U>(items: &'a [T], f: impl Fn(&'a T) -> U) -> Vec<U> {
    items.iter().map(f).collect()
}
