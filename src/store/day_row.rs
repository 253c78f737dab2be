//! One UTC day's counts as both databases return them to a report, and their conversion to
//! the domain [`DayTally`].

use chrono::NaiveDate;

use crate::domain::{DayTally, Tally};

#[derive(Debug, sqlx::FromRow)]
pub struct DayRow {
    day: NaiveDate,
    successes: i64,
    failures: i64,
    missed: i64,
}

impl From<DayRow> for DayTally {
    fn from(r: DayRow) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        DayTally {
            day: r.day,
            tally: Tally { successes: n(r.successes), failures: n(r.failures), missed: n(r.missed) },
        }
    }
}
