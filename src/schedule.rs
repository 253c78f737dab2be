//! Slot arithmetic: slot k of a site starts at phase + k × interval (wall clock, µs since the
//! epoch). The phase comes from the site id, so sites spread evenly and keep their slots across
//! restarts, and slots never drift.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX).max(1)
}

/// FNV-1a of a site id: stable across builds, platforms and restarts (std's SipHash is not
/// promised to be).
fn stable_hash(site_id: &str) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    site_id.hash(&mut h);
    h.0
}

/// A site's place within its interval, stable for a given id and interval.
pub fn phase(site_id: &str, interval: Duration) -> i64 {
    (stable_hash(site_id) % micros(interval) as u64) as i64
}

/// One producer's share of a site list split between `count` producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Every site belongs to exactly one shard index.
    pub fn owns(&self, site_id: &str) -> bool {
        // A second mix keeps shard choice independent of the phase within an interval.
        let h = stable_hash(site_id).rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h % u64::from(self.count.max(1))) as u32 == self.index
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

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The first slot strictly after `now`.
pub fn next_slot_after(now: DateTime<Utc>, interval: Duration, phase: i64) -> DateTime<Utc> {
    let i = micros(interval);
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
