//! What operators see: the status table (plain and JSON), the live view of `sitemon run`, and
//! the report of a one-off `sitemon check`.

mod check_report;
mod live;
mod table;

pub use check_report::{check_json, check_text};
pub use live::live_table;
pub use table::{Overview, status_json, status_table};
