//! Silences: maintenance windows from the config (one-off or recurring every week) and the
//! silences added with `sitemon silence add` share one shape — site patterns, a time span and a
//! reason. A message whose incident falls in one is recorded as silenced, not sent; checks and
//! incidents go on as ever.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, Utc, Weekday};

use super::route::Pattern;

/// When a window is open.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// From `from` (inclusive) to `until` (exclusive).
    Once { from: DateTime<Utc>, until: DateTime<Utc> },
    /// Every week on `days`, from `at` (UTC) for `length` (which may run into the next day).
    Weekly { days: Vec<Weekday>, at: NaiveTime, length: Duration },
}

impl Window {
    /// Is the window open at `t`?
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        match self {
            Window::Once { from, until } => *from <= t && t < *until,
            Window::Weekly { days, at, length } => {
                let length = TimeDelta::from_std(*length).unwrap_or(TimeDelta::MAX);
                // A window that started on one of the last days (up to a week back) may still run.
                (0..=7).any(|back| {
                    let day = t.date_naive() - TimeDelta::days(back);
                    let start = day.and_time(*at).and_utc();
                    days.contains(&day.weekday()) && start <= t && t - start < length
                })
            }
        }
    }
}

/// A maintenance window or a silence: which sites, when, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    /// Sites whose name matches any of these (none: every site).
    pub sites: Vec<Pattern>,
    pub window: Window,
    pub reason: String,
}

impl Maintenance {
    /// Does it silence a message about `site` at `t`?
    pub fn silences(&self, site: &str, t: DateTime<Utc>) -> bool {
        (self.sites.is_empty() || self.sites.iter().any(|p| p.matches(site))) && self.window.contains(t)
    }
}

/// A silence added with `sitemon silence add`, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: uuid::Uuid,
    /// A one-off window.
    pub maintenance: Maintenance,
}

impl Silence {
    /// A silence as a store keeps it. Its patterns were checked when it was added; one that no
    /// longer parses leaves the silence out (`None`), never read as "every site".
    pub fn stored(
        id: uuid::Uuid,
        sites: &[String],
        (from, until): (DateTime<Utc>, DateTime<Utc>),
        reason: String,
    ) -> Option<Self> {
        let sites = sites.iter().map(|p| Pattern::new(p).ok()).collect::<Option<Vec<_>>>()?;
        Some(Silence { id, maintenance: Maintenance { sites, window: Window::Once { from, until }, reason } })
    }
}

/// The first window that silences a message about `site` at `t`, if any.
pub fn silenced<'a>(windows: &'a [Maintenance], site: &str, t: DateTime<Utc>) -> Option<&'a Maintenance> {
    windows.iter().find(|m| m.silences(site, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_one_off_window_is_half_open() {
        let w = Window::Once { from: utc(2026, 12, 24, 0, 0), until: utc(2026, 12, 26, 0, 0) };
        assert!(!w.contains(utc(2026, 12, 23, 23, 59)));
        assert!(w.contains(utc(2026, 12, 24, 0, 0)) && w.contains(utc(2026, 12, 25, 23, 59)));
        assert!(!w.contains(utc(2026, 12, 26, 0, 0)));
    }

    #[test]
    fn a_weekly_window_runs_on_its_days_and_past_midnight() {
        // Sundays 23:00 for 2 h. 2026-12-06 is a Sunday.
        let w = Window::Weekly {
            days: vec![Weekday::Sun],
            at: NaiveTime::from_hms_opt(23, 0, 0).unwrap(),
            length: Duration::from_secs(7200),
        };
        assert!(!w.contains(utc(2026, 12, 6, 22, 59)));
        assert!(w.contains(utc(2026, 12, 6, 23, 0)));
        assert!(w.contains(utc(2026, 12, 7, 0, 59)), "into Monday");
        assert!(!w.contains(utc(2026, 12, 7, 1, 0)));
        assert!(!w.contains(utc(2026, 12, 5, 23, 30)), "not on Saturday");
        assert!(w.contains(utc(2026, 12, 13, 23, 30)), "and again a week later");
    }

    #[test]
    fn a_window_silences_its_sites_only() {
        let m = Maintenance {
            sites: vec![Pattern::new("db-*").unwrap()],
            window: Window::Once { from: utc(2026, 1, 1, 0, 0), until: utc(2026, 1, 2, 0, 0) },
            reason: "upgrade".into(),
        };
        let all = [m];
        assert_eq!(
            silenced(&all, "db-eu", utc(2026, 1, 1, 12, 0)).map(|m| m.reason.as_str()),
            Some("upgrade")
        );
        assert!(silenced(&all, "web", utc(2026, 1, 1, 12, 0)).is_none());
        assert!(silenced(&all, "db-eu", utc(2026, 1, 2, 12, 0)).is_none());
    }
}
