//! Deterministic check ids: the same (site, region, slot) always yields the same UUID, so a
//! replayed or duplicated check is recognised downstream.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Namespace for sitemon's v5 UUIDs (itself a v5 UUID of "sitemon" in the URL namespace).
pub(super) const NAMESPACE: Uuid = Uuid::from_u128(0x6d2f_4c1e_9a57_5b0e_8f3a_2c6b_1d9e_7a41);

/// UUIDv5 of `site_id \n region \n scheduled_at (µs since epoch)`.
pub fn check_id(site_id: &str, region: &str, scheduled_at: DateTime<Utc>) -> Uuid {
    let name = format!("{site_id}\n{region}\n{}", scheduled_at.timestamp_micros());
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn same_slot_same_id_other_slot_other_id() {
        let t = Utc.timestamp_micros(1_700_000_000_123_456).unwrap();
        let a = check_id("site", "eu", t);
        assert_eq!(a, check_id("site", "eu", t));
        assert_ne!(a, check_id("site", "us", t));
        assert_ne!(a, check_id("site2", "eu", t));
        assert_ne!(a, check_id("site", "eu", t + chrono::Duration::microseconds(1)));
        assert_eq!(a.get_version_num(), 5);
    }
}
