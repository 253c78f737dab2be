//! Domain types: what a site is and what one check of it produced. No I/O, no adapter types.

mod admit;
mod check;
mod check_id;
mod conditions;
mod incident;
mod judging;
mod micros;
mod secret;
mod site;
mod sla;
mod status;
mod tracks;

pub use admit::{Admission, MAX_ID_BYTES, MAX_TEXT_BYTES, storable_text};
pub use check::{CheckResult, CheckStatus, FailureKind, MAX_ERROR_BYTES};
pub use check_id::{NAMESPACE, check_id};
pub use conditions::Condition;
pub use incident::{
    DEFAULT_CERT_WARN_DAYS, DEFAULT_DOWN_AFTER, DEFAULT_UP_AFTER, Derived, EndReason, EventKind, Incident,
    IncidentEvent, IncidentKind,
};
pub use micros::micros;
pub use secret::Secret;
pub use site::{ExpectedStatus, Site, SiteOptions, SiteUrl, Thresholds, TlsOptions};
pub use sla::{DayTally, Tally, downtime_secs};
pub use status::SiteStatus;
pub use tracks::{Judging, MAX_REGIONS, SILENT_INTERVALS, Sample, SiteTracks, Track, derive_incidents};
