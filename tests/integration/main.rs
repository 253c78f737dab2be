//! sitemon's integration tests: one binary, real services, local test sites.
//! Services come from `scripts/services up` (see `make test`).

mod support;

mod config_errors;
mod config_table;
mod embedded;
mod events;
mod hostile;
mod interop;
mod kafka_security;
mod pipeline;
mod registry;
mod reload;
mod reload_signals;
mod scheduler;
mod site_files;
mod store;
