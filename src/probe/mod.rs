//! The HTTP probe: one fresh connection per check, timed phase by phase, every failure
//! classified into a [`crate::domain::FailureKind`].

mod classify;
mod config_problems;
mod dns;
mod expiry;
mod http;
mod tls;

pub use config_problems::{for_config, for_sites, inline, located, tls_problem};
pub use http::{HyperProbe, ProbeSetupError};
pub use tls::TlsSetupError;
