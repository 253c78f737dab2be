//! sitemon: website-availability checks on precise schedules, shipped as Avro through Kafka and
//! stored in PostgreSQL. See ARCHITECTURE.md for the map.

pub mod app;
pub mod cli;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod error_chain;
pub mod events;
pub mod health;
pub mod kafka;
pub mod memory;
pub mod metric;
pub mod notifier;
pub mod notify;
pub mod ops_server;
pub mod ports;
pub mod probe;
pub mod producer;
pub mod providers;
pub mod readiness;
pub mod registry;
pub mod reload;
pub mod retry;
pub mod schedule;
pub mod setup;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod ui;
pub mod wire;

/// Documented exit codes.
pub mod exit {
    /// Clean stop.
    pub const OK: i32 = 0;
    /// Runtime failure.
    pub const FAILURE: i32 = 1;
    /// Usage or config error, reported before any connection.
    pub const USAGE: i32 = 64;
}
