//! Reduces the results a batch added to the history to one latest-status row per (site, region):
//! the newest result, how long its up/down state has lasted within the batch, whether it spans
//! the whole batch, and the oldest result (a stored status newer than that cannot simply be
//! continued: the store recomputes it from the history).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::{CheckResult, CheckStatus};

/// The newest result of a site in a batch, with its run of equal up/down states.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow<'a> {
    pub result: &'a CheckResult,
    /// Length of the trailing run of results in the same state as the newest (failures count).
    pub run_len: i32,
    /// `scheduled_at` of the first result of that run.
    pub run_start: DateTime<Utc>,
    /// The run covers every result of this site in the batch, so it continues the stored state.
    pub whole: bool,
    /// `scheduled_at` of the site's oldest result in the batch.
    pub oldest: DateTime<Utc>,
}

/// Missed slots say nothing about the site, so they do not move its latest status. `results`
/// are the rows new to the history: a replayed result must not count twice.
pub fn latest_per_site<'a>(results: &[&'a CheckResult]) -> Vec<LatestRow<'a>> {
    let mut by_site: HashMap<(&str, &str), Vec<&CheckResult>> = HashMap::new();
    for r in results.iter().copied().filter(|r| r.status != CheckStatus::Missed) {
        by_site.entry((&r.site_id, &r.region)).or_default().push(r);
    }
    let mut rows: Vec<LatestRow> = by_site
        .into_values()
        .map(|mut rs| {
            rs.sort_by_key(|r| r.scheduled_at);
            rs.dedup_by_key(|r| r.scheduled_at);
            let newest = *rs.last().expect("groups are never empty");
            let run: Vec<_> = rs.iter().rev().take_while(|r| r.is_up() == newest.is_up()).collect();
            LatestRow {
                oldest: rs[0].scheduled_at,
                result: newest,
                run_len: run.len() as i32,
                run_start: run.last().expect("the run holds the newest").scheduled_at,
                whole: run.len() == rs.len(),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.result.site_id, &a.result.region).cmp(&(&b.result.site_id, &b.result.region)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FailureKind;
    use chrono::TimeZone;

    fn at(site: &str, secs: i64, up: bool) -> CheckResult {
        let t = Utc.timestamp_opt(secs, 0).unwrap();
        let mut r = CheckResult::new(site, "http://x/", "eu", t, t, CheckStatus::Success);
        if !up {
            r.fail(FailureKind::Timeout, "t");
        }
        r
    }

    #[test]
    fn newest_wins_regardless_of_arrival_order() {
        let batch = [at("a", 30, false), at("a", 10, true), at("a", 20, false), at("b", 5, true)];
        let rows = latest_per_site(&batch.iter().collect::<Vec<_>>());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].oldest.timestamp(), 10);
        assert_eq!(rows[0].result.scheduled_at.timestamp(), 30);
        assert_eq!((rows[0].run_len, rows[0].run_start.timestamp(), rows[0].whole), (2, 20, false));
        assert_eq!((rows[1].run_len, rows[1].whole), (1, true));
    }

    #[test]
    fn duplicates_count_once_and_missed_is_ignored() {
        let mut missed = at("a", 40, true);
        missed.status = CheckStatus::Missed;
        let batch = [at("a", 10, false), at("a", 10, false), missed];
        let rows = latest_per_site(&batch.iter().collect::<Vec<_>>());
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].run_len, rows[0].whole), (1, true));
        assert_eq!(rows[0].result.scheduled_at.timestamp(), 10);
    }
}
