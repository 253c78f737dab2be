//! Durations as whole microseconds, the unit of every timing in a check result and of slots.

use std::time::Duration;

/// `d` in whole microseconds, saturating at `i64::MAX` (about 292,000 years).
pub fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_to_whole_microseconds_and_saturates() {
        assert_eq!(micros(Duration::ZERO), 0);
        assert_eq!(micros(Duration::from_nanos(1_999)), 1);
        assert_eq!(micros(Duration::from_secs(60)), 60_000_000);
        assert_eq!(micros(Duration::MAX), i64::MAX);
    }
}
