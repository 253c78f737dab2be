//! Deterministic check ids: the same (site, region, slot) always yields the same UUID, so a
//! replayed or duplicated check is recognised downstream.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Namespace for sitemon's v5 UUIDs: a constant of sitemon's own (not derived from anything),
/// fixed for good — every stored check id depends on it. The README documents it for clients
/// that write results themselves.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6d2f_4c1e_9a57_5b0e_8f3a_2c6b_1d9e_7a41);

/// UUIDv5 of the UTF-8 bytes of `site_id \n region \n scheduled_at`, the last as the decimal
/// number of µs since the epoch.
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

    /// The rule and worked example of the README's "Writing results from another client",
    /// computed here, so that the README cannot drift from the code.
    #[test]
    fn the_readme_example() {
        let readme = include_str!("../../README.md");
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
        let id = check_id("shop", "eu-west", at);
        assert_eq!(id.to_string(), "fadcb5b4-6773-5a70-8f6e-464d2264f849");
        assert_eq!(id, Uuid::new_v5(&NAMESPACE, b"shop\neu-west\n1780315200000000"));
        for shown in [
            format!("**Namespace**: `{NAMESPACE}`"),
            "region `eu-west`, scheduled at 2026-06-01T12:00:00Z, which is\n`1780315200000000` µs".to_owned(),
            format!("`shop\\neu-west\\n{}`", at.timestamp_micros()),
            format!("the id is\n`{id}`"),
            format!("== \"{id}\""),
        ] {
            assert!(readme.contains(&shown), "the README no longer shows {shown:?}");
        }
    }
}
