//! Storage adapters: PostgreSQL (sqlx) for the Kafka pipeline, and the batch reduction that
//! turns many results into one latest-status row per site.

mod latest;
mod pg;

pub use latest::{LatestRow, latest_per_site};
pub use pg::PgStore;
