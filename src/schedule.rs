//! Slot arithmetic: slot k of a site starts at phase + k × interval (wall clock, µs since the
//! epoch). The phase comes from the site id, so sites spread evenly and keep their slots across
//! restarts, and slots never drift.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::micros;

/// An interval in microseconds, at least 1 so that it can divide.
fn interval_us(interval: Duration) -> i64 {
    micros(interval).max(1)
}

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a 64 over exactly the UTF-8 bytes of `site_id`: nothing added before or after, so the
/// value is fixed by the FNV definition, not by a Rust release (`std::hash::Hash` for `str`
/// feeds an extra terminator byte that Rust does not promise to keep, and SipHash is seeded).
/// Phases and shards are shared between processes and across restarts, so they rest on this.
fn fnv1a64(site_id: &str) -> u64 {
    site_id.bytes().fold(FNV_OFFSET_BASIS, |h, b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// A site's place within its interval, stable for a given id and interval:
/// `phase = fnv1a64(id) % interval_us`, with `interval_us` the interval in whole microseconds
/// (at least 1).
pub fn phase(site_id: &str, interval: Duration) -> i64 {
    (fnv1a64(site_id) % interval_us(interval) as u64) as i64
}

/// One producer's share of a site list split between `count` producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Every site belongs to exactly one shard index:
    /// `shard(id) = (rotl64(fnv1a64(id), 29) × 0x9e3779b97f4a7c15 mod 2⁶⁴) % count`, and this
    /// producer owns the site when `shard(id) == index`. The second mix keeps the shard choice
    /// independent of the phase within an interval.
    pub fn owns(&self, site_id: &str) -> bool {
        self.of(site_id) == self.index
    }

    /// The shard index (below `count`) that owns `site_id`.
    pub fn of(&self, site_id: &str) -> u32 {
        let h = fnv1a64(site_id).rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h % u64::from(self.count.max(1))) as u32
    }
}

/// Wall-clock time driven by tokio's clock: anchored to the system clock once, then advanced
/// by the monotonic clock, so slots are immune to clock steps and tests can pause time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: DateTime<Utc>,
    mono: tokio::time::Instant,
}

impl Clock {
    pub fn start() -> Self {
        Clock { wall: Utc::now(), mono: tokio::time::Instant::now() }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.at(tokio::time::Instant::now())
    }

    fn at(&self, i: tokio::time::Instant) -> DateTime<Utc> {
        self.wall + chrono::Duration::from_std(i - self.mono).unwrap_or_default()
    }

    /// The monotonic instant of a wall-clock time (now, if it is in the past).
    pub fn instant(&self, t: DateTime<Utc>) -> tokio::time::Instant {
        let ahead = (t - self.now()).to_std().unwrap_or_default();
        tokio::time::Instant::now() + ahead
    }
}

/// The first slot strictly after `now`.
pub fn next_slot_after(now: DateTime<Utc>, interval: Duration, phase: i64) -> DateTime<Utc> {
    let i = interval_us(interval);
    let t = now.timestamp_micros();
    let k = (t - phase).div_euclid(i) + 1;
    DateTime::from_timestamp_micros(k * i + phase).expect("slot within chrono's range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn slots_are_aligned_to_the_phase_and_do_not_drift() {
        let interval = Duration::from_secs(30);
        let p = phase("site-a", interval);
        assert!((0..30_000_000).contains(&p));
        let mut now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        for _ in 0..10_000 {
            let slot = next_slot_after(now, interval, p);
            assert!(slot > now);
            assert_eq!((slot.timestamp_micros() - p).rem_euclid(30_000_000), 0);
            // A late wake-up (e.g. 7 ms) still lands on the next exact slot.
            now = slot + chrono::Duration::milliseconds(7);
        }
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let interval = Duration::from_secs(60);
        let mut buckets = [0u32; 6];
        for i in 0..6000 {
            let p = phase(&format!("site-{i}"), interval);
            buckets[(p / 10_000_000) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (800..1200).contains(&b)), "{buckets:?}");
    }

    /// Expected values computed by an independent Python implementation of FNV-1a 64 (a plain
    /// loop over `s.encode("utf-8")`, not this code); the first three are also the published
    /// FNV-1a test vectors. Changing any of them moves every site's slots and shard.
    const VECTORS: &[(&str, u64, i64, u32, u32)] = &[
        // (site id, fnv1a64, phase for a 60 s interval in µs, shard of 3, shard of 5)
        ("", 0xcbf2_9ce4_8422_2325, 26_656_037, 2, 1),
        ("a", 0xaf63_dc4c_8601_ec8c, 35_641_996, 1, 4),
        ("foobar", 0x8594_4171_f739_67e8, 12_436_968, 1, 1),
        ("site-1", 0x2f80_5f01_77ed_56f8, 33_225_976, 0, 1),
        ("example.com", 0x5768_4663_4e27_14c6, 44_529_350, 0, 2),
        ("café/über-测试", 0x1444_e669_d219_7323, 45_721_123, 1, 3),
    ];

    #[test]
    fn phase_and_shard_match_independently_computed_vectors() {
        for &(id, hash, phase60, of3, of5) in VECTORS {
            assert_eq!(fnv1a64(id), hash, "fnv1a64({id:?})");
            assert_eq!(phase(id, Duration::from_secs(60)), phase60, "phase({id:?}, 60s)");
            assert_eq!(Shard { index: 0, count: 3 }.of(id), of3, "shard of 3 for {id:?}");
            assert_eq!(Shard { index: 0, count: 5 }.of(id), of5, "shard of 5 for {id:?}");
            assert!(Shard { index: of5, count: 5 }.owns(id));
        }
    }

    #[test]
    fn shards_split_sites_completely_and_disjointly() {
        let count = 5;
        let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
        let mut sizes = vec![0; count as usize];
        for i in 0..10_000 {
            let id = format!("site-{i}");
            let owners: Vec<u32> = shards.iter().filter(|s| s.owns(&id)).map(|s| s.index).collect();
            assert_eq!(owners.len(), 1, "{id} owned by {owners:?}");
            sizes[owners[0] as usize] += 1;
        }
        assert!(sizes.iter().all(|&n| (1_800..2_200).contains(&n)), "{sizes:?}");
    }
}
