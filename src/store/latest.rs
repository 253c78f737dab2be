//! Reduces the results a batch added to the history to one latest-status row per (site, region):
//! the newest result, how long its up/down state has lasted within the batch, whether it spans
//! the whole batch, the oldest result (a stored status newer than that cannot simply be
//! continued: the store recomputes it from the history), and the ceiling of what may be shown.
//!
//! The latest status is the newest result, except that a result dated ahead of the consumer's
//! clock (by more than [`AHEAD_SLACK`]) is passed over while the site's last result received is
//! in the present: a result from the future that arrived before present ones does not hide them.
//! It counts again once the clock reaches it. A region whose clock runs ahead (its last result
//! received is itself ahead) shows its newest.

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
    /// The latest status shows the newest result dated no later than this (the consumer's clock
    /// plus [`AHEAD_SLACK`]); none when the site's last result received is itself ahead of it.
    pub ceiling: Option<DateTime<Utc>>,
}

/// How far ahead of the consumer's clock a result may be and still count as present: consumers'
/// clocks differ a little, and a result a few seconds ahead hides nothing for longer.
pub const AHEAD_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

impl LatestRow<'_> {
    /// The batch's newest result may be shown: it is not a result from the future followed by
    /// older ones (otherwise the store recomputes the status under the ceiling).
    pub fn shown(&self) -> bool {
        self.ceiling.is_none_or(|c| self.result.scheduled_at <= c)
    }
}

/// Missed slots say nothing about the site, so they do not move its latest status. `results`
/// are the rows new to the history, in the order they arrived (a replayed result must not count
/// twice); `now` is the consumer's clock.
pub fn latest_per_site<'a>(results: &[&'a CheckResult], now: DateTime<Utc>) -> Vec<LatestRow<'a>> {
    let mut by_site: HashMap<(&str, &str), Vec<&CheckResult>> = HashMap::new();
    for r in results.iter().copied().filter(|r| r.status != CheckStatus::Missed) {
        by_site.entry((&r.site_id, &r.region)).or_default().push(r);
    }
    let mut rows: Vec<LatestRow> = by_site
        .into_values()
        .map(|mut rs| {
            let last = rs.last().expect("groups are never empty").scheduled_at;
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
                ceiling: (last <= now + AHEAD_SLACK).then_some(now + AHEAD_SLACK),
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

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_000, 0).unwrap()
    }

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
        let rows = latest_per_site(&batch.iter().collect::<Vec<_>>(), now());
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
        let rows = latest_per_site(&batch.iter().collect::<Vec<_>>(), now());
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].run_len, rows[0].whole), (1, true));
        assert_eq!(rows[0].result.scheduled_at.timestamp(), 10);
    }

    #[test]
    fn a_future_result_followed_by_present_ones_is_not_shown() {
        // Arrived: present 10, future 1_050 (the consumer's clock says 1_000), present 20.
        let batch = [at("a", 10, false), at("a", 1_050, true), at("a", 20, false)];
        let rows = latest_per_site(&batch.iter().collect::<Vec<_>>(), now());
        assert_eq!(rows[0].ceiling, Some(now() + AHEAD_SLACK), "the last received is in the present");
        assert!(!rows[0].shown(), "the future success is passed over");
        // A region running ahead: its last received is ahead too, nothing is passed over.
        let ahead = [at("a", 1_050, true), at("a", 1_040, false)];
        let rows = latest_per_site(&ahead.iter().collect::<Vec<_>>(), now());
        assert_eq!(rows[0].ceiling, None);
        assert!(rows[0].shown());
        // A few seconds ahead is the present.
        let close = [at("a", 1_004, true), at("a", 20, false)];
        assert!(latest_per_site(&close.iter().collect::<Vec<_>>(), now())[0].shown());
        // The present, in any order: the newest is shown.
        let late = [at("a", 30, false), at("a", 10, true)];
        assert!(latest_per_site(&late.iter().collect::<Vec<_>>(), now())[0].shown());
    }
}
