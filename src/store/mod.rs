//! Storage adapters: PostgreSQL (sqlx) for the Kafka pipeline, SQLite for `sitemon run`, the batch reduction that
//! turns many results into one latest-status row per site, and the incident-event outbox of each.

mod batch;
#[cfg(test)]
mod batch_tests;
mod day_row;
mod event_row;
mod incident_row;
mod latest;
#[cfg(test)]
mod memory_tx;
mod pg;
mod pg_copy;
mod pg_deliveries;
mod pg_history;
mod pg_incidents;
mod pg_outbox;
mod pg_reach;
mod pg_report;
mod pg_tx;
mod report;
mod result_row;
mod sqlite;
mod sqlite_deliveries;
mod sqlite_history;
mod sqlite_incidents;
mod sqlite_outbox;
mod sqlite_report;
mod sqlite_tx;
mod status_row;
mod track_row;

pub use latest::{AHEAD_SLACK, LatestRow, latest_per_site};
pub use pg::PgStore;
pub use pg_deliveries::PgDeliveries;
pub use pg_outbox::PgOutbox;
pub use pg_reach::{SetupError, Unreachable};
pub use sqlite::SqliteStore;
pub use sqlite_deliveries::SqliteDeliveries;
