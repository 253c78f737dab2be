//! SLA arithmetic of a report: counts of a period and the uptime they give. MISSED slots say
//! nothing about the site: they are counted apart and left out of the uptime's denominator.

use chrono::{DateTime, NaiveDate, Utc};

use super::Incident;

/// The results of one period, counted by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub successes: u64,
    pub failures: u64,
    pub missed: u64,
}

impl Tally {
    /// Results that say something about the site: successes and failures.
    pub fn checks(&self) -> u64 {
        self.successes + self.failures
    }

    /// 100 × successes / checks; `None` without a check (only MISSED slots, or nothing).
    pub fn uptime_pct(&self) -> Option<f64> {
        match self.checks() {
            0 => None,
            n => Some(100.0 * self.successes as f64 / n as f64),
        }
    }

    pub fn add(&mut self, other: &Tally) {
        self.successes += other.successes;
        self.failures += other.failures;
        self.missed += other.missed;
    }

    /// The sum of the days' tallies.
    pub fn of_days(days: &[DayTally]) -> Tally {
        let mut t = Tally::default();
        for d in days {
            t.add(&d.tally);
        }
        t
    }
}

/// One UTC day's tally (every region together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayTally {
    pub day: NaiveDate,
    pub tally: Tally,
}

/// Seconds within `[from, to)` during which the site as a whole had an incident open (an open
/// incident lasts until `now`). Incidents of single regions do not count, nor slowness or an
/// expiring certificate (the site was up).
pub fn downtime_secs(
    incidents: &[Incident],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> i64 {
    incidents
        .iter()
        .filter(|i| i.region.is_none() && i.kind == super::IncidentKind::Down)
        .map(|i| {
            let start = i.started_at.max(from);
            let end = i.ended_at.unwrap_or(now).min(to);
            (end - start).num_seconds().max(0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn missed_slots_are_counted_apart_from_the_uptime() {
        let t = Tally { successes: 3, failures: 1, missed: 5 };
        assert_eq!(t.checks(), 4);
        assert_eq!(t.uptime_pct(), Some(75.0));
        assert_eq!(Tally { successes: 0, failures: 0, missed: 2 }.uptime_pct(), None);
    }

    #[test]
    fn the_total_adds_the_days() {
        let day = |d, s, f, m| DayTally {
            day: NaiveDate::from_ymd_opt(2026, 1, d).unwrap(),
            tally: Tally { successes: s, failures: f, missed: m },
        };
        assert_eq!(
            Tally::of_days(&[day(1, 2, 1, 0), day(2, 5, 0, 3)]),
            Tally { successes: 7, failures: 1, missed: 3 }
        );
        assert_eq!(Tally::of_days(&[]), Tally::default());
    }

    #[test]
    fn downtime_is_clipped_to_the_window_and_counts_only_whole_site_incidents() {
        let t = |h, m| Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap();
        let incident = |region: Option<&str>, start, end| Incident {
            incident_id: Incident::id_for("s", region, start),
            kind: super::super::IncidentKind::Down,
            site_id: "s".into(),
            region: region.map(str::to_owned),
            url: "http://s/".into(),
            started_at: start,
            confirmed_at: start,
            ended_at: end,
            end_reason: None,
            regions: vec!["a".into()],
            failure_kind: None,
            error: None,
            failed_checks: 3,
        };
        let incidents = [
            incident(None, t(0, 50), Some(t(1, 10))), // 10 min inside the window
            incident(Some("a"), t(2, 0), Some(t(3, 0))), // a region's: not counted
            incident(None, t(4, 0), None),            // open: until now
        ];
        assert_eq!(downtime_secs(&incidents, t(1, 0), t(6, 0), t(4, 30)), 600 + 1800);
        assert_eq!(downtime_secs(&incidents, t(1, 0), t(6, 0), t(7, 0)), 600 + 7200);
    }
}
