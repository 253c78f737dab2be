//! The continuous schedule: one timer heap of (next slot, site) pairs for the whole roster, slots
//! taken as they fall due, a new site list swapped in between ticks, and at the stop the slots
//! due by then drained as MISSED records, with the runs of missed slots still waiting.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::missed_run::Run;
use super::roster::{Carried, NEW, Replacement, Roster, Scheduled};
use super::slot::{NOT_IN_TIME, STOPPED, Shared, at};
use super::{NewList, Reloads, TAKEOVER_LOOKBACK};
use crate::domain::micros;
use crate::ports::{SiteProbe, StatusPublisher};
use crate::schedule::next_slot_after;

/// A site of a roster: the roster and the site's index in it.
type SiteOf = (Arc<[Scheduled]>, usize);

/// Each site's next slot (µs since the epoch) by its index in the roster; one entry per site.
type Heap = BinaryHeap<Reverse<(i64, usize)>>;

/// How often, at most, the scheduler looks whether checks carried across a reload are over.
const PRUNE_EVERY_US: i64 = 1_000_000;

/// One timer for all sites: a heap of (next slot, site) pairs, one slot taken at a time. A due
/// slot takes a place in the in-flight window (waiting while it is full), then gets a task that
/// waits for its permits until the site's next slot, checks and publishes; a slot whose site is
/// still busy, or that the scheduler reaches only after the next one is due, is missed: it joins
/// the site's run, which the site's next record carries (a taken-over site's catch-up slots are
/// MISSED records of their own).
/// A new site list from `reloads` replaces the roster once the slots due by then are taken (see
/// [`replace`]). At shutdown, the slots due by then that no check took are drained as MISSED
/// records.
pub(super) async fn schedule<P: SiteProbe, S: StatusPublisher>(
    s: &Arc<Shared<P, S>>,
    roster: Roster,
    reloads: &mut Reloads,
) {
    let now = s.clock.now();
    let mut heap: Heap = roster
        .sites
        .iter()
        .enumerate()
        .map(|(i, e)| Reverse((next_slot_after(now, e.site.interval, e.phase).timestamp_micros(), i)))
        .collect();
    let mut roster = roster;
    let mut carried = Carried::default();
    let mut pruned = now.timestamp_micros();
    'ticks: loop {
        let next_due = heap.peek().map(|&Reverse((due, _))| due);
        let mut reload = None;
        tokio::select! {
            biased;
            _ = s.shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(s.clock.instant(at(next_due.unwrap_or_default()))), if next_due.is_some() => {}
            list = reloads.next() => reload = Some(list),
        }
        let now = s.clock.now().timestamp_micros();
        let sites = roster.sites.clone();
        while let Some(&Reverse((due, i))) = heap.peek() {
            if due > now {
                break;
            }
            // Taken before the slot, so a full window holds the scheduler back instead of
            // piling up tasks; shutdown ends the wait and the slot is drained below.
            let Some(place) = s.place(&s.shutdown).await else { break 'ticks };
            // The wait for a place may have been long: judge the slot by the clock as it is now.
            let now = s.clock.now().timestamp_micros();
            heap.pop();
            let place = place.holding(&s.progress, due);
            s.slots.fetch_add(1, Ordering::Relaxed);
            let e = &sites[i];
            let next = due + micros(e.site.interval);
            heap.push(Reverse((next, i)));
            // A slot whose successor is already due was never started; nor was one whose site
            // is still busy with the previous slot (in this roster or, across a reload, an
            // earlier one).
            if next <= now || carried.busy(i) || e.busy.swap(true, Ordering::AcqRel) {
                if e.is_catch_up(due) {
                    let r = s.missed_result(&e.site, at(due), NOT_IN_TIME, None);
                    s.spawn_publish(r, place);
                    continue;
                }
                s.note_missed(&e.site, at(due), NOT_IN_TIME);
                let run = Run::new(&s.progress, due);
                if let Some(run) = e.run.add(run, e.site.interval) {
                    let r = s.run_record(&e.site, &run, NOT_IN_TIME);
                    s.spawn_publish(r, place.carrying(Some(run)));
                }
                continue;
            }
            // The slot carries the site's run of missed slots: every one of them is before it.
            let run = e.run.take();
            let (s2, all) = (s.clone(), sites.clone());
            s.tracker.spawn(async move {
                let e = &all[i];
                s2.run_slot(e, at(due), at(next), place, run).await;
            });
        }
        let mut applied = None;
        if let Some(list) = reload {
            // Every slot due by `now` is taken: the new roster starts from there.
            let runs;
            (carried, applied, runs) = replace(&mut roster, &mut heap, carried, list, now);
            // Published beside the schedule (they hold the progress until acknowledged).
            s.tracker.spawn(publish_runs(s.clone(), runs, NOT_IN_TIME));
        }
        taken_until(s, &heap, now);
        // Told once the progress counts the new roster's slots (a taken-over site's overdue ones).
        if let Some(applied) = applied {
            let _ = applied.send(now);
        }
        if !carried.is_empty() && now - pruned >= PRUNE_EVERY_US {
            carried.prune();
            pruned = now;
        }
    }
    drain(s, &roster.sites, heap, s.clock.now().timestamp_micros()).await;
}

/// Tells the producer's progress the earliest slot not taken yet: every site's next slot is in
/// the heap; with no site at all, nothing before `now` is owed.
fn taken_until<P, S>(s: &Shared<P, S>, heap: &Heap, now: i64) {
    s.progress.untaken_from(heap.peek().map_or(now, |&Reverse((due, _))| due));
}

/// Replaces the roster with `list` once every slot due by `now` was taken. A site kept with the
/// same interval keeps its next slot exactly (none skipped, none repeated) and is checked by its
/// new definition from then on; an added site, or a kept one whose interval changed, starts at its
/// first slot after `now`; a removed site gets no further slot, while its check under way runs
/// to its end and is published. A kept site's check still under way is carried over: the site's
/// next slots are MISSED until it is over. An added site taken over from another producer starts
/// at its first slot that producer did not publish (at most [`TAKEOVER_LOOKBACK`] ago): the
/// slots before `now` then fall due at once, and those already followed by the next are MISSED.
/// Every run of missed slots waiting is taken to be published on its own: a removed site's (its
/// cell closed, as is that of a site whose interval changed: no later record carries them), and a
/// kept site's, so that a group member handing sites on is not held back by runs of sites it
/// keeps. Returns the checks carried over,
/// `list.applied` for the caller to tell, and the removed sites (to publish their runs).
fn replace(
    roster: &mut Roster,
    heap: &mut Heap,
    carried: Carried,
    list: NewList,
    now: i64,
) -> (Carried, Option<tokio::sync::oneshot::Sender<i64>>, Vec<(SiteOf, Run)>) {
    let NewList { sites, resume, applied } = list;
    let Replacement { roster: new, previous, changes } = roster.replace(sites);
    let oldest = now - micros(TAKEOVER_LOOKBACK);
    let old = &roster.sites;
    let mut next_of = vec![0i64; old.len()];
    for Reverse((due, i)) in std::mem::take(heap).into_vec() {
        next_of[i] = due;
    }
    *heap = new
        .sites
        .iter()
        .zip(&previous)
        .enumerate()
        .map(|(j, (e, &i))| {
            let due = if i != NEW && old[i as usize].site.interval == e.site.interval {
                next_of[i as usize]
            } else if let Some(&from) = resume.get(&e.site.id).filter(|_| i == NEW) {
                // The first slot at or after `from`, kept within the lookback and not later than
                // the usual start; those before `now` are its catch-up.
                e.catch_up_until(now);
                next_slot_after(at(from.clamp(oldest, now) - 1), e.site.interval, e.phase).timestamp_micros()
            } else {
                next_slot_after(at(now), e.site.interval, e.phase).timestamp_micros()
            };
            Reverse((due, j))
        })
        .collect();
    let carried = carried.across(old, &previous);
    // Sites that left, and those whose interval changed: their runs are published now.
    let mut kept = vec![false; old.len()];
    for (e, &i) in new.sites.iter().zip(&previous).filter(|(_, i)| **i != NEW) {
        // As `Roster::replace` shares the run of a site kept with its interval.
        kept[i as usize] = old[i as usize].site.interval == e.site.interval;
    }
    let close = |e: &Scheduled| e.run.close(e.busy.load(Ordering::Acquire));
    let left = (0..old.len()).filter(|&i| !kept[i]).filter_map(|i| Some(((old.clone(), i), close(&old[i])?)));
    let mut runs: Vec<(SiteOf, Run)> = left.collect();
    runs.extend(
        (0..new.sites.len()).filter_map(|j| Some(((new.sites.clone(), j), new.sites[j].run.take()?))),
    );
    tracing::info!(
        sites = new.len(),
        added = changes.added,
        removed = changes.removed,
        changed = changes.changed,
        unchanged = changes.unchanged,
        "site list reloaded"
    );
    *roster = new;
    (carried, applied, runs)
}

/// Publishes each run on a record of its own (its site's, in a roster and at an index); once the
/// grace period is over, what is left is counted as abandoned.
async fn publish_runs<P: SiteProbe, S: StatusPublisher>(
    s: Arc<Shared<P, S>>,
    runs: Vec<(SiteOf, Run)>,
    why: &'static str,
) {
    for ((roster, i), run) in runs {
        let e = &roster[i];
        match s.place(&s.abandon).await {
            Some(place) => {
                let r = s.run_record(&e.site, &run, why);
                s.spawn_publish(r, place.carrying(Some(run)));
            }
            None => s.abandon_run(run),
        }
    }
}

/// After shutdown at `stopped`: every slot due by then that no check took becomes a MISSED
/// record, each with its place in the in-flight window and carrying its site's run; then the
/// runs still waiting are published. If the grace period ends first, the slots still without a
/// record are counted as abandoned.
async fn drain<P: SiteProbe, S: StatusPublisher>(
    s: &Arc<Shared<P, S>>,
    sites: &Arc<[Scheduled]>,
    heap: Heap,
    stopped: i64,
) {
    drain_due(s, sites, heap, stopped).await;
    let close = |e: &Scheduled| e.run.close(e.busy.load(Ordering::Acquire));
    let runs = (0..sites.len()).filter_map(|i| Some(((sites.clone(), i), close(&sites[i])?))).collect();
    publish_runs(s.clone(), runs, STOPPED).await;
}

async fn drain_due<P: SiteProbe, S: StatusPublisher>(
    s: &Arc<Shared<P, S>>,
    sites: &[Scheduled],
    mut heap: Heap,
    stopped: i64,
) {
    while let Some(&Reverse((due, i))) = heap.peek() {
        if due > stopped {
            return;
        }
        let Some(place) = s.place(&s.abandon).await else {
            let left: u64 = heap
                .iter()
                .filter(|Reverse((due, _))| *due <= stopped)
                .map(|Reverse((due, i))| {
                    ((stopped - due) / micros(sites[*i].site.interval).max(1) + 1) as u64
                })
                .sum();
            tracing::error!(
                slots = left,
                "grace period over before these slots had a place in the in-flight window"
            );
            s.slots.fetch_add(left, Ordering::Relaxed);
            s.abandon_slots(left);
            return;
        };
        heap.pop();
        let place = place.holding(&s.progress, due);
        s.slots.fetch_add(1, Ordering::Relaxed);
        let e = &sites[i];
        heap.push(Reverse((due + micros(e.site.interval), i)));
        taken_until(s, &heap, stopped);
        let run = e.run.take();
        let r = s.missed_result(&e.site, at(due), STOPPED, run.as_ref());
        s.spawn_publish(r, place.carrying(run));
    }
}
