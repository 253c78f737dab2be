//! sitemon's integration tests: one binary, real services, local test sites.
//! Services come from `scripts/services up` (see `make test`).

mod support;

mod config_errors;
mod config_table;
mod dashboard;
mod edge_errors;
mod embedded;
mod events;
mod hostile;
mod incident_property;
mod incidents;
mod interop;
mod kafka_security;
mod pipeline;
mod registry;
mod reload;
mod reload_signals;
mod report_command;
mod report_source;
mod report_views;
mod scheduler;
mod site_files;
mod sites_topic;
mod store;
mod track_upgrade;
