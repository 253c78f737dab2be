//! What operators see: the status table (plain and JSON), the live view of `sitemon run`, the
//! report of a one-off `sitemon check`, and `sitemon report`'s SLA summary and exports.

mod check_report;
mod fleet;
#[cfg(test)]
mod fleet_tests;
mod live;
mod printable;
mod report;
mod shares;
mod silences;
mod site_changes;
mod table;

pub use check_report::{check_json, check_text};
pub use fleet::{DEFAULT_LIMIT, Query as StatusQuery, Sort as StatusSort, State as SiteState};
pub use live::live_table;
pub use report::{RESULT_COLUMNS, ReportError, ReportFormat, ReportRequest, write_report};
pub use shares::producer_shares;
pub use silences::silences_table;
pub use site_changes::{SiteChanges, sites_table};
pub use table::{Overview, status_json, status_table};
