//! Storage adapters: PostgreSQL (sqlx) for the Kafka pipeline, SQLite for `sitemon run`, and the batch reduction that
//! turns many results into one latest-status row per site.

mod latest;
mod pg;
mod pg_copy;
mod pg_incidents;
mod sqlite;
mod sqlite_incidents;
mod status_row;
mod track_row;

pub use latest::{LatestRow, latest_per_site};
pub use pg::PgStore;
pub use sqlite::SqliteStore;
