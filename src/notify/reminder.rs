//! Reminders: while an incident stays open, a route with `repeat_every` says so again, one
//! interval after its last word about it (the opening or the previous reminder). A notifier
//! that was away for hours sends one reminder, not one per missed interval (the caller counts
//! the next interval from when it spoke).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// When the next reminder is due, if it is due by `now`.
pub fn due(repeat_every: Duration, last: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let next = last.checked_add_signed(TimeDelta::from_std(repeat_every).ok()?)?;
    (next <= now).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn one_reminder_an_interval_after_the_last_word() {
        let t = |s: i64| Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(due(hour, t(0), t(3599)), None);
        assert_eq!(due(hour, t(0), t(3600)), Some(t(3600)));
        // Away for three hours: one reminder, due an hour after the last word.
        assert_eq!(due(hour, t(0), t(3 * 3600 + 5)), Some(t(3600)));
        assert_eq!(due(Duration::MAX, t(0), t(10)), None, "an interval past the calendar never comes due");
    }
}
