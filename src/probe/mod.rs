//! The HTTP probe: one fresh connection per check, timed phase by phase, every failure
//! classified into a [`crate::domain::FailureKind`].

mod classify;
mod http;

pub use http::HyperProbe;
