//! The HTTP probe: one fresh connection per check, timed phase by phase, every failure
//! classified into a [`crate::domain::FailureKind`].

mod classify;
mod dns;
mod expiry;
mod http;
mod tls;

pub use http::{HyperProbe, ProbeSetupError};
pub use tls::TlsSetupError;
