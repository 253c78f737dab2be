//! How far the producer's schedule is done: the moment before which every slot of its sites was
//! taken and ended published (or handed to the publisher's retries and given up). A group of
//! producers hands it on with a site, so that the next owner knows which slots nobody published.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The producer's low watermark. Slots hold a place in it from the moment the scheduler takes
/// them until their result is acknowledged; the scheduler says which slot it takes next.
#[derive(Debug, Default)]
pub struct Progress {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Slots taken and not yet ended (µs since the epoch → how many).
    held: BTreeMap<i64, u32>,
    /// Every slot before this one was taken by the scheduler (the earliest next slot of any site).
    untaken_from: Option<i64>,
    /// The earliest slot whose result was given up, never acknowledged.
    lost: Option<i64>,
}

impl Progress {
    /// Every slot scheduled before this moment (µs since the epoch) was taken and its result
    /// acknowledged; `None` before the scheduler took its first look at the clock.
    pub fn checked_through(&self) -> Option<i64> {
        let inner = self.inner.lock().expect("progress lock");
        let mut through = inner.untaken_from?;
        if let Some((&slot, _)) = inner.held.first_key_value() {
            through = through.min(slot);
        }
        if let Some(lost) = inner.lost {
            through = through.min(lost);
        }
        Some(through)
    }

    pub(super) fn hold(&self, slot: i64) {
        *self.inner.lock().expect("progress lock").held.entry(slot).or_default() += 1;
    }

    pub(super) fn release(&self, slot: i64) {
        let mut inner = self.inner.lock().expect("progress lock");
        if let Some(n) = inner.held.get_mut(&slot) {
            *n -= 1;
            if *n == 0 {
                inner.held.remove(&slot);
            }
        }
    }

    /// A slot whose result was given up: nothing after it counts as done.
    pub(super) fn lose(&self, slot: i64) {
        let mut inner = self.inner.lock().expect("progress lock");
        inner.lost = Some(inner.lost.map_or(slot, |l| l.min(slot)));
    }

    /// Every slot before `slot` was taken by the scheduler.
    pub(super) fn untaken_from(&self, slot: i64) {
        self.inner.lock().expect("progress lock").untaken_from = Some(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_waits_for_the_earliest_slot_in_flight_and_stops_at_a_lost_one() {
        let p = Progress::default();
        assert_eq!(p.checked_through(), None, "nothing known before the scheduler looked");
        p.untaken_from(100);
        assert_eq!(p.checked_through(), Some(100));
        p.hold(40);
        p.hold(40);
        p.hold(70);
        assert_eq!(p.checked_through(), Some(40));
        p.release(40);
        assert_eq!(p.checked_through(), Some(40), "one of the two slots at 40 is still in flight");
        p.release(40);
        assert_eq!(p.checked_through(), Some(70));
        p.release(70);
        p.untaken_from(200);
        assert_eq!(p.checked_through(), Some(200));
        p.lose(150);
        p.untaken_from(300);
        assert_eq!(p.checked_through(), Some(150), "a result given up is never counted as done");
    }
}
