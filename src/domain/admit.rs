//! What a check result read from the feed must satisfy before it is stored: anything a record
//! carries that no producer makes, or that the store cannot hold or would not keep (older than
//! the retention), makes it a dead letter.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use super::CheckResult;

/// Longest site id or region, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Longest url, error, pattern, protocol version or address, in bytes.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// The window of plausible times: from 2000-01-01 — or, with a retention, from `retention`
/// before the consumer's clock, whichever is later — to `max_skew` past the consumer's clock.
/// A record from before the retention window would only be deleted again, and on PostgreSQL
/// would first create a history partition for its day: a stream of crafted old records must not
/// add partitions (and their DDL locks) by the thousand.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub now: DateTime<Utc>,
    pub max_skew: Duration,
    /// How long history is kept (`retention`); `None`: kept forever, only the 2000 floor.
    pub retention: Option<Duration>,
}

fn earliest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .expect("a valid date")
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
}

impl Admission {
    pub fn new(now: DateTime<Utc>, max_skew: Duration) -> Self {
        Admission { now, max_skew, retention: None }
    }

    /// Records older than `retention` before `now` are refused too (when it is `Some`).
    pub fn with_retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// The start of the retention window, when there is one (and it lies after 2000).
    fn retained_from(&self) -> Option<DateTime<Utc>> {
        let age = chrono::Duration::from_std(self.retention?).ok()?;
        self.now.checked_sub_signed(age).filter(|t| *t > earliest())
    }

    fn latest(&self) -> DateTime<Utc> {
        let skew = chrono::Duration::from_std(self.max_skew).unwrap_or(chrono::Duration::MAX);
        self.now.checked_add_signed(skew).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `Ok` when the result can be stored as it is, else why not (without echoing the value:
    /// a record's text is not a log line).
    pub fn check(&self, r: &CheckResult) -> Result<(), String> {
        let (from, retained_from, to) = (earliest(), self.retained_from(), self.latest());
        for (name, t) in [("scheduled_at", r.scheduled_at), ("started_at", r.started_at)] {
            if t < from {
                return Err(format!("`{name}` {t} is before 2000-01-01"));
            }
            if let (Some(cutoff), Some(retention)) = (retained_from, self.retention)
                && t < cutoff
            {
                return Err(format!(
                    "`{name}` {t} is older than the retention window ({}: history before {cutoff} is not kept)",
                    humantime::format_duration(retention)
                ));
            }
            if t > to {
                return Err(format!(
                    "`{name}` {t} is more than {} ahead of the consumer's clock ({})",
                    humantime::format_duration(self.max_skew),
                    self.now
                ));
            }
        }
        if let Some(t) = r.tls_not_after {
            // Certificates are issued for years, not millennia; both stores hold this range.
            let (lo, hi) = (NaiveDate::from_ymd_opt(1950, 1, 1), NaiveDate::from_ymd_opt(9999, 12, 31));
            let day = t.date_naive();
            if lo.is_some_and(|lo| day < lo) || hi.is_some_and(|hi| day > hi) {
                return Err(format!("`tls_not_after` {t} is outside 1950–9999"));
            }
        }
        match (r.missed_since, r.missed_slots) {
            (None, None) => {}
            (Some(since), Some(n))
                if n > 0 && since >= from && since < r.scheduled_at && fits(since, n, r) => {}
            _ => {
                return Err(
                    "`missed_since` and `missed_slots` are not a run of slots before `scheduled_at` \
                     (both or neither; at least one slot, since 2000-01-01, one `interval_ms` apart)"
                        .to_owned(),
                );
            }
        }
        for (name, value) in [("site_id", Some(&r.site_id)), ("region", Some(&r.region))] {
            text(name, value.map(String::as_str), MAX_ID_BYTES)?;
        }
        if r.site_id.is_empty() {
            return Err("`site_id` is empty".to_owned());
        }
        // Every producer has a region label; the incident tracks keep `""` for the site itself.
        if r.region.is_empty() {
            return Err("`region` is empty".to_owned());
        }
        // The history key: a record whose id is not the one its site, region and slot give could
        // stand in for (and silently shadow) another site's result.
        if r.check_id != super::check_id(&r.site_id, &r.region, r.scheduled_at) {
            return Err("`check_id` is not the UUIDv5 of its site_id, region and scheduled_at".to_owned());
        }
        let texts = [
            ("url", Some(r.url.as_str())),
            ("error", r.error.as_deref()),
            ("http_version", r.http_version.as_deref()),
            ("remote_addr", r.remote_addr.as_deref()),
            ("pattern", r.pattern.as_deref()),
            ("producer_version", r.producer_version.as_deref()),
        ];
        for (name, value) in texts {
            text(name, value, MAX_TEXT_BYTES)?;
        }
        let numbers = [
            ("dns_us", r.dns_us),
            ("connect_us", r.connect_us),
            ("tls_us", r.tls_us),
            ("ttfb_us", r.ttfb_us),
            ("total_us", r.total_us),
            ("body_bytes", r.body_bytes),
        ];
        for (name, value) in numbers {
            if value.is_some_and(|n| n < 0) {
                return Err(format!("`{name}` is negative"));
            }
        }
        if r.status_code.is_some_and(|c| !(100..=999).contains(&c)) {
            return Err("`status_code` is not an HTTP status (100–999)".to_owned());
        }
        Ok(())
    }
}

/// `n` slots one interval apart from `since` end before the record's slot (a record without an
/// interval says nothing about their spacing).
fn fits(since: DateTime<Utc>, n: u32, r: &CheckResult) -> bool {
    let span = i128::from((r.scheduled_at - since).num_microseconds().unwrap_or(i64::MAX));
    r.interval_ms.is_none_or(|ms| i128::from(n - 1) * i128::from(ms) * 1000 < span)
}

fn text(name: &str, value: Option<&str>, max: usize) -> Result<(), String> {
    let Some(v) = value else { return Ok(()) };
    if v.contains('\0') {
        return Err(format!("`{name}` contains a NUL character"));
    }
    if v.len() > max {
        return Err(format!("`{name}` is {} bytes long (at most {max})", v.len()));
    }
    Ok(())
}

/// Text that every store can hold: no NUL characters and at most `max` bytes (cut at a
/// character boundary). For dead-letter reasons, which may quote what a record carried.
pub fn storable_text(s: &str, max: usize) -> String {
    let mut out: String = s.chars().map(|c| if c == '\0' { '\u{FFFD}' } else { c }).collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckStatus;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn ok() -> CheckResult {
        CheckResult::new("a", "http://a/", "eu", now(), now(), CheckStatus::Success)
    }

    #[test]
    fn times_outside_the_window_are_refused() {
        let a = Admission::new(now(), Duration::from_secs(3600));
        assert!(a.check(&ok()).is_ok());
        let at = |minutes| {
            let t = now() + chrono::Duration::minutes(minutes);
            CheckResult::new("a", "http://a/", "eu", t, t, CheckStatus::Success)
        };
        assert!(a.check(&at(59)).is_ok());
        assert!(a.check(&at(61)).unwrap_err().contains("scheduled_at"));
        let mut r = ok();
        r.started_at = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        assert!(a.check(&r).unwrap_err().contains("started_at"));
    }

    #[test]
    fn times_before_the_retention_window_are_refused() {
        let day = Duration::from_secs(86_400);
        let a = Admission::new(now(), Duration::from_secs(120)).with_retention(Some(30 * day));
        let at = |days_ago: i64, seconds: i64| {
            let t = now() - chrono::Duration::days(days_ago) + chrono::Duration::seconds(seconds);
            CheckResult::new("a", "http://a/", "eu", t, t, CheckStatus::Success)
        };
        assert!(a.check(&at(30, 1)).is_ok(), "just inside the window");
        let why = a.check(&at(30, -1)).unwrap_err();
        assert!(why.contains("scheduled_at") && why.contains("retention window"), "{why}");
        assert!(a.check(&at(3650, 0)).unwrap_err().contains("retention window"));
        // Without a retention, history is kept forever: only the 2000 floor applies.
        let forever = Admission::new(now(), Duration::from_secs(120));
        assert!(forever.check(&at(3650, 0)).is_ok());
        // A retention reaching back past 2000 leaves the floor as it is.
        let long = Admission::new(now(), Duration::from_secs(120)).with_retention(Some(100 * 365 * day));
        let mut r = ok();
        r.started_at = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        assert!(long.check(&r).unwrap_err().contains("before 2000-01-01"));
        assert!(long.check(&at(3650, 0)).is_ok());
    }

    #[test]
    fn nul_bytes_negative_numbers_and_oversized_text_are_refused() {
        let a = Admission::new(now(), Duration::from_secs(60));
        let mut r = ok();
        r.error = Some("x\0y".into());
        assert!(a.check(&r).unwrap_err().contains("error"));
        let mut r = ok();
        r.site_id = "s".repeat(MAX_ID_BYTES + 1);
        assert!(a.check(&r).unwrap_err().contains("site_id"));
        let mut r = ok();
        r.ttfb_us = Some(-1);
        assert!(a.check(&r).unwrap_err().contains("ttfb_us"));
        let mut r = ok();
        r.status_code = Some(42);
        assert!(a.check(&r).unwrap_err().contains("status_code"));
    }

    #[test]
    fn a_run_of_missed_slots_must_lie_before_its_record() {
        let a = Admission::new(now(), Duration::from_secs(60));
        let run = |since: Option<i64>, n: Option<u32>| {
            let mut r = ok();
            r.missed_since = since.map(|s| now() - chrono::Duration::seconds(s));
            r.missed_slots = n;
            a.check(&r)
        };
        assert!(run(Some(30), Some(30)).is_ok());
        assert!(run(None, None).is_ok());
        for (since, n) in
            [(Some(30), None), (None, Some(3)), (Some(30), Some(0)), (Some(0), Some(1)), (Some(-5), Some(1))]
        {
            let why = run(since, n).unwrap_err();
            assert!(why.contains("missed_since"), "{since:?} {n:?}: {why}");
        }
        assert!(run(Some(30 * 365 * 86_400), Some(1)).unwrap_err().contains("missed_since"), "before 2000");
        // With an interval, the run must fit before the record: 30 slots a second apart do, 31 not.
        let spaced = |n: u32| {
            let mut r = ok();
            (r.missed_since, r.missed_slots, r.interval_ms) =
                (Some(now() - chrono::Duration::seconds(30)), Some(n), Some(1000));
            a.check(&r)
        };
        assert!(spaced(30).is_ok());
        assert!(spaced(31).unwrap_err().contains("missed_slots"));
        assert!(spaced(u32::MAX).is_err());
    }

    #[test]
    fn a_check_id_that_is_not_its_sites_is_refused() {
        let a = Admission::new(now(), Duration::from_secs(60));
        let mut r = ok();
        r.check_id = crate::domain::check_id("other", "eu", now());
        assert!(a.check(&r).unwrap_err().contains("check_id"));
    }

    #[test]
    fn an_empty_region_is_refused() {
        let a = Admission::new(now(), Duration::from_secs(60));
        let mut r = ok();
        r.region = String::new();
        r.check_id = crate::domain::check_id(&r.site_id, "", r.scheduled_at);
        assert!(a.check(&r).unwrap_err().contains("region"));
    }

    #[test]
    fn the_producers_own_failure_messages_are_admitted() {
        let a = Admission::new(now(), Duration::from_secs(60));
        let mut r = ok();
        r.fail(crate::domain::FailureKind::RedirectLimit, format!("redirect to {}\0", "x".repeat(100_000)));
        assert!(a.check(&r).is_ok());
    }

    #[test]
    fn storable_text_has_no_nul_and_is_bounded() {
        assert_eq!(storable_text("a\0b", 10), "a\u{FFFD}b");
        let long = "é".repeat(100);
        let cut = storable_text(&long, 11);
        assert!(cut.len() <= 11 + '…'.len_utf8() && cut.ends_with('…'), "{cut}");
    }
}
