//! A site's run of missed slots. An overloaded producer does not publish a MISSED record per slot
//! it could not start: it keeps the site's run of them and carries it on the site's next record
//! (`missed_since`, `missed_slots`), so recording misses costs no more records the further the
//! producer falls behind. A run is published on a MISSED record of its own (its last slot,
//! carrying the others) once it spans [`RUN_AT_MOST`], when its site leaves the roster, and at
//! the stop.

use std::sync::{Arc, Mutex};

use once_cell::race::OnceBox;
use std::time::Duration;

use super::progress::Progress;
use crate::domain::{CheckResult, micros};

/// The longest a run is kept before it is published on a record of its own: a site whose checks
/// keep missing still shows it within about this long.
pub(super) const RUN_AT_MOST: Duration = Duration::from_secs(60);

/// Slots of one site missed in a row (µs since the epoch). The first is held in the producer's
/// [`Progress`] until the run is let go (published, given up or abandoned with its record).
pub(super) struct Run {
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) count: u32,
    hold: Hold,
}

/// A slot held in the progress while this lives.
struct Hold(Arc<Progress>, i64);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

impl Run {
    /// A run of the one slot `slot`, held in `progress`.
    pub(super) fn new(progress: &Arc<Progress>, slot: i64) -> Self {
        progress.hold(slot);
        Run { first: slot, last: slot, count: 1, hold: Hold(progress.clone(), slot) }
    }

    /// This slot's run after `before` (what the slot carried), as one.
    pub(super) fn after(self, before: Option<Run>) -> Run {
        match before {
            Some(b) => b.merge(self),
            None => self,
        }
    }

    /// Both runs as one (they are the same site's, adjacent); the earlier hold is kept.
    fn merge(self, other: Run) -> Run {
        let (first, last, count) =
            (self.first.min(other.first), self.last.max(other.last), self.count + other.count);
        let hold = if self.hold.1 <= other.hold.1 { self.hold } else { other.hold };
        Run { first, last, count, hold }
    }

    /// `r` (a later slot's record) carries the run.
    pub(super) fn stamp(&self, r: &mut CheckResult) {
        r.missed_since = chrono::DateTime::from_timestamp_micros(self.first);
        r.missed_slots = Some(self.count);
    }

    /// `r`, the record of the run's last slot, carries the slots before it.
    pub(super) fn stamp_last(&self, r: &mut CheckResult) {
        if self.count > 1 {
            r.missed_since = chrono::DateTime::from_timestamp_micros(self.first);
            r.missed_slots = Some(self.count - 1);
        }
    }
}

/// Where a site's run waits for the site's next record; shared by the rosters the site stays in.
#[derive(Default)]
pub(super) struct RunCell(Mutex<Cell>);

#[derive(Default)]
struct Cell {
    run: Option<Run>,
    /// The site left the roster or the producer stopped: nothing waits here any more.
    closed: bool,
}

impl RunCell {
    fn cell(&self) -> std::sync::MutexGuard<'_, Cell> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The run waiting for the site's next record, taken by it.
    pub(super) fn take(&self) -> Option<Run> {
        self.cell().run.take()
    }

    /// Adds `run` (a missed slot, with what its slot carried) to the waiting one. Returns the run
    /// to publish now: when the cell is closed, or the run spans [`RUN_AT_MOST`] with the
    /// site's next slot (`interval`); otherwise it waits.
    pub(super) fn add(&self, run: Run, interval: Duration) -> Option<Run> {
        let mut cell = self.cell();
        let run = match cell.run.take() {
            Some(waiting) => waiting.merge(run),
            None => run,
        };
        if cell.closed || run.last + micros(interval) - run.first >= micros(RUN_AT_MOST) {
            return Some(run);
        }
        cell.run = Some(run);
        None
    }

    /// Closes the cell (the site left the roster, or the producer stopped): its run, if any, is
    /// the caller's to publish, and later misses are published at once.
    pub(super) fn close(&self) -> Option<Run> {
        let mut cell = self.cell();
        cell.closed = true;
        cell.run.take()
    }
}

/// A site's [`RunCell`], made when first needed (one word until then): most sites never miss a
/// slot, and a cell for each of a million would cost 80 MB. A site kept across a replacement shares its cell with its
/// entry in the new roster when it has one or a check of it is under way (that check may still
/// add to it, see [`SiteRun::share`]).
#[derive(Default)]
pub(super) struct SiteRun(OnceBox<Arc<RunCell>>);

impl SiteRun {
    fn cell(&self) -> &Arc<RunCell> {
        self.0.get_or_init(|| Box::new(Arc::default()))
    }

    /// See [`RunCell::take`].
    pub(super) fn take(&self) -> Option<Run> {
        self.0.get()?.take()
    }

    /// See [`RunCell::add`].
    pub(super) fn add(&self, run: Run, interval: Duration) -> Option<Run> {
        self.cell().add(run, interval)
    }

    /// See [`RunCell::close`]. With a check of the site under way (`in_flight`: it may still add
    /// a missed slot, which must then be published at once) the cell is made closed if need be.
    pub(super) fn close(&self, in_flight: bool) -> Option<Run> {
        match in_flight {
            true => self.cell().close(),
            false => self.0.get()?.close(),
        }
    }

    /// The run of the site's entry in a new roster: this one's cell when there is one, or when a
    /// check of the site is under way (`in_flight`, read after that check's last `add` could have
    /// made it: the check clears its site's `busy` with `Release` once it has added), so that
    /// whatever that check adds reaches the new entry; otherwise a cell of its own, made when needed.
    pub(super) fn share(&self, in_flight: bool) -> SiteRun {
        match (self.0.get(), in_flight) {
            (Some(cell), _) => SiteRun(OnceBox::with_value(Box::new(cell.clone()))),
            (None, true) => SiteRun(OnceBox::with_value(Box::new(self.cell().clone()))),
            (None, false) => SiteRun::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn a_run_waits_until_it_spans_the_limit_and_holds_its_first_slot() {
        let p = Arc::new(Progress::default());
        p.untaken_from(1_000 * S);
        let cell = RunCell::default();
        let second = Duration::from_secs(1);
        for k in 0..59 {
            assert!(cell.add(Run::new(&p, 100 * S + k * S), second).is_none(), "slot {k} waits");
        }
        assert_eq!(p.checked_through(), Some(100 * S), "the first missed slot holds the progress");
        let run = cell.add(Run::new(&p, 159 * S), second).expect("60 slots span a minute");
        assert_eq!((run.first, run.last, run.count), (100 * S, 159 * S, 60));
        assert!(cell.take().is_none());
        let mut r = CheckResult::new(
            "a",
            "http://a/",
            "r",
            chrono::DateTime::from_timestamp_micros(run.last).unwrap(),
            chrono::DateTime::from_timestamp_micros(run.last).unwrap(),
            crate::domain::CheckStatus::Missed,
        );
        run.stamp_last(&mut r);
        assert_eq!((r.missed_since.unwrap().timestamp_micros(), r.missed_slots), (100 * S, Some(59)));
        assert_eq!(p.checked_through(), Some(100 * S));
        drop(run);
        assert_eq!(p.checked_through(), Some(1_000 * S), "published: let go");
    }

    #[test]
    fn a_slot_put_back_late_merges_and_a_long_interval_is_never_kept() {
        let p = Arc::new(Progress::default());
        p.untaken_from(1_000 * S);
        let cell = RunCell::default();
        let second = Duration::from_secs(1);
        assert!(cell.add(Run::new(&p, 11 * S), second).is_none());
        // The slot before, put back by its task after the scheduler missed the next one.
        assert!(cell.add(Run::new(&p, 10 * S), second).is_none());
        assert_eq!(p.checked_through(), Some(10 * S));
        let run = cell.take().unwrap();
        assert_eq!((run.first, run.last, run.count), (10 * S, 11 * S, 2));
        let mut r = CheckResult::new(
            "a",
            "http://a/",
            "r",
            chrono::DateTime::from_timestamp_micros(12 * S).unwrap(),
            chrono::DateTime::from_timestamp_micros(12 * S).unwrap(),
            crate::domain::CheckStatus::Success,
        );
        run.stamp(&mut r);
        assert_eq!((r.missed_since.unwrap().timestamp_micros(), r.missed_slots), (10 * S, Some(2)));
        drop(run);
        // A site checked every minute or less often publishes each miss at once.
        assert!(cell.add(Run::new(&p, 20 * S), RUN_AT_MOST).is_some());
        // A closed cell keeps nothing.
        assert!(cell.add(Run::new(&p, 30 * S), second).is_none());
        assert_eq!(cell.close().map(|r| r.count), Some(1));
        assert!(cell.add(Run::new(&p, 31 * S), second).is_some());
        assert_eq!(p.checked_through(), Some(1_000 * S), "every run let go");
    }

    #[test]
    fn a_sites_cell_is_made_when_needed_and_reaches_the_next_roster_while_a_check_is_under_way() {
        let p = Arc::new(Progress::default());
        p.untaken_from(1_000 * S);
        let second = Duration::from_secs(1);
        // Nothing missed, nothing under way: no cell, and the next roster's entry starts anew.
        let quiet = SiteRun::default();
        let next = quiet.share(false);
        assert!(
            quiet.0.get().is_none() && next.0.get().is_none(),
            "no cell made for a site that never missed"
        );
        // A check under way at the replacement adds its missed slot to the old entry afterwards:
        // the new entry's next record carries it.
        let busy = SiteRun::default();
        let next = busy.share(true);
        assert!(busy.add(Run::new(&p, 100 * S), second).is_none());
        assert_eq!(next.take().map(|r| (r.first, r.count)), Some((100 * S, 1)));
        // A cell made before is shared whether or not a check is under way.
        let missed = SiteRun::default();
        assert!(missed.add(Run::new(&p, 200 * S), second).is_none());
        let next = missed.share(false);
        assert_eq!(next.take().map(|r| r.first), Some(200 * S));
        // A site that leaves with a check under way: what that check adds is published at once.
        let leaving = SiteRun::default();
        assert!(leaving.close(true).is_none());
        assert!(leaving.add(Run::new(&p, 300 * S), second).is_some(), "published at once, not left waiting");
        assert!(SiteRun::default().close(false).is_none());
    }
}
