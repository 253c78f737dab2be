//! Storage adapters: PostgreSQL (sqlx) for the Kafka pipeline, SQLite for `sitemon run`, and the batch reduction that
//! turns many results into one latest-status row per site.

mod day_row;
mod incident_row;
mod latest;
mod pg;
mod pg_copy;
mod pg_incidents;
mod pg_report;
mod result_row;
mod sqlite;
mod sqlite_incidents;
mod sqlite_report;
mod status_row;
mod track_row;

pub use latest::{LatestRow, latest_per_site};
pub use pg::PgStore;
pub use sqlite::SqliteStore;
