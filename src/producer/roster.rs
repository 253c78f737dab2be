//! The roster: the sites a producer checks, in one shared allocation, and how a new site list
//! replaces it (which sites are kept, added, removed or changed, and which checks from before the
//! replacement still run).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::sync::Semaphore;

use super::ProducerOptions;
use super::missed_run::SiteRun;
use crate::domain::Site;
use crate::schedule::phase;

/// A site with what the scheduler keeps for it.
pub(super) struct Scheduled {
    pub(super) site: Site,
    pub(super) phase: i64,
    pub(super) host: Arc<Semaphore>,
    /// A check of this site is under way (waiting for permits or checking; not delivering).
    pub(super) busy: AtomicBool,
    /// Its run of missed slots waiting for its next record (kept across replacements).
    pub(super) run: SiteRun,
    /// Slots before this second (since the epoch; 0: none) are a taken-over site's catch-up: each
    /// one missed is a MISSED record of its own, which a record the previous owner published
    /// replaces downstream. Whole seconds, rounded up, keep the entry small: a slot just after
    /// the takeover counted as catch-up is still recorded, only as a record of its own.
    catch_up_before: AtomicU32,
}

impl Scheduled {
    /// Whether `slot` (µs since the epoch) is one of the site's catch-up slots.
    pub(super) fn is_catch_up(&self, slot: i64) -> bool {
        slot < i64::from(self.catch_up_before.load(Ordering::Relaxed)) * 1_000_000
    }

    /// Slots before `now` (µs since the epoch) are the site's catch-up.
    pub(super) fn catch_up_until(&self, now: i64) {
        let second = u32::try_from(u64::try_from(now).unwrap_or(0).div_ceil(1_000_000)).unwrap_or(u32::MAX);
        self.catch_up_before.store(second, Ordering::Relaxed);
    }
}

/// The sites a producer checks, each with its phase and its host's permit pool, in one shared
/// allocation (a task holds it and an index): 100k sites take one block, not 100k.
pub struct Roster {
    pub(super) sites: Arc<[Scheduled]>,
    per_host: usize,
}

/// What a new site list changed, by site id.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// In the new list only.
    pub added: usize,
    /// In the old list only.
    pub removed: usize,
    /// In both, with a different definition (URL, interval, headers…).
    pub changed: usize,
    /// In both, the same.
    pub unchanged: usize,
}

/// Marks a new roster entry without a predecessor in [`Replacement::previous`].
pub(super) const NEW: u32 = u32::MAX;

/// A roster built from a new list, and how it relates to the one it replaces.
pub(super) struct Replacement {
    pub(super) roster: Roster,
    /// For each entry of the new roster, its index in the old one (`NEW` when it was not there).
    pub(super) previous: Vec<u32>,
    pub(super) changes: Changes,
}

impl Roster {
    pub fn new(sites: Vec<Site>, opts: &ProducerOptions) -> Self {
        let sites = sites.into_iter().map(|s| (s, SiteRun::default())).collect();
        Self::build(sites, opts.per_host_concurrency.max(1), HashMap::new())
    }

    /// The roster's sites in one allocation; a host's permit pool is taken from `hosts` when the
    /// host is there, so a pool's permits held by checks in flight keep counting.
    fn build(sites: Vec<(Site, SiteRun)>, per_host: usize, hosts: HashMap<&str, Arc<Semaphore>>) -> Self {
        let mut fresh: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let sites = sites
            .into_iter()
            .map(|(site, run)| {
                let name = site.url.host();
                let host = match hosts.get(name) {
                    Some(pool) => pool.clone(),
                    None => fresh
                        .entry(name.to_owned())
                        .or_insert_with(|| Arc::new(Semaphore::new(per_host)))
                        .clone(),
                };
                Scheduled {
                    phase: phase(&site.id, site.interval),
                    site,
                    host,
                    busy: AtomicBool::new(false),
                    run,
                    catch_up_before: AtomicU32::new(0),
                }
            })
            .collect::<Arc<[Scheduled]>>();
        metrics::gauge!(crate::metric::SITES_ASSIGNED).set(sites.len() as f64);
        Roster { sites, per_host }
    }

    pub fn len(&self) -> usize {
        self.sites.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The roster for `sites`, which replace this one's: sites are matched by id, a kept site keeps
    /// its run of missed slots (unless its interval changed), and hosts still present keep their
    /// permit pool.
    pub(super) fn replace(&self, sites: Vec<Site>) -> Replacement {
        let old: HashMap<&str, usize> =
            self.sites.iter().enumerate().map(|(i, e)| (e.site.id.as_str(), i)).collect();
        let mut changes = Changes::default();
        let mut seen = vec![false; self.sites.len()];
        let previous: Vec<u32> = sites
            .iter()
            .map(|site| match old.get(site.id.as_str()) {
                // A repeated id (config validation refuses them) succeeds its old entry once.
                Some(&i) if !seen[i] => {
                    seen[i] = true;
                    if self.sites[i].site.same_check(site) {
                        changes.unchanged += 1;
                    } else {
                        changes.changed += 1;
                    }
                    i as u32
                }
                _ => {
                    changes.added += 1;
                    NEW
                }
            })
            .collect();
        changes.removed = seen.iter().filter(|kept| !**kept).count();
        drop(old);
        let hosts = self.sites.iter().map(|e| (e.site.url.host(), e.host.clone())).collect();
        let sites = sites
            .into_iter()
            .zip(&previous)
            .map(|(site, &i)| {
                // A run's slots are one interval apart: a site whose interval changes starts anew.
                let run = match self.sites.get(i as usize) {
                    Some(old) if old.site.interval == site.interval => {
                        old.run.share(old.busy.load(Ordering::Acquire))
                    }
                    _ => SiteRun::default(),
                };
                (site, run)
            })
            .collect();
        let roster = Self::build(sites, self.per_host, hosts);
        Replacement { roster, previous, changes }
    }
}

/// Kept sites whose check from an earlier roster was still under way at a replacement: until
/// that check is over, the site's slots in the current roster are MISSED rather than overlap it.
/// Each holds the earlier roster (shared with the task running the check) and the site's index
/// there; that entry's `busy` only ever goes from set to clear, since no slot of it starts again.
#[derive(Default)]
pub(super) struct Carried(HashMap<usize, (Arc<[Scheduled]>, usize)>);

impl Carried {
    /// True while a check of site `i` (current roster) from an earlier roster is under way.
    pub(super) fn busy(&mut self, i: usize) -> bool {
        match self.0.get(&i) {
            None => false,
            Some((r, j)) if r[*j].busy.load(Ordering::Acquire) => true,
            Some(_) => {
                self.0.remove(&i);
                false
            }
        }
    }

    /// Lets go of the checks that are over (and of earlier rosters no check needs any more).
    pub(super) fn prune(&mut self) {
        self.0.retain(|_, (r, j)| r[*j].busy.load(Ordering::Acquire));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The checks under way when `old` (with what it carried itself) is replaced: for each entry
    /// of the new roster with a predecessor in `old`, the check of that predecessor, if any.
    pub(super) fn across(self, old: &Arc<[Scheduled]>, previous: &[u32]) -> Carried {
        let mut before = self.0;
        let mut now = HashMap::new();
        for (j, &i) in previous.iter().enumerate() {
            if i == NEW {
                continue;
            }
            let i = i as usize;
            if old[i].busy.load(Ordering::Acquire) {
                now.insert(j, (old.clone(), i));
            } else if let Some((r, k)) = before.remove(&i)
                && r[k].busy.load(Ordering::Acquire)
            {
                now.insert(j, (r, k));
            }
        }
        Carried(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(text: &str) -> Vec<Site> {
        crate::config::parse(text, "s.yaml".as_ref(), &|_| None).unwrap().sites
    }

    fn opts() -> ProducerOptions {
        ProducerOptions {
            once: false,
            max_concurrency: 10,
            per_host_concurrency: 2,
            grace: std::time::Duration::from_secs(1),
            region: "test".into(),
            log_results: false,
            max_in_flight: 10,
            progress: Default::default(),
        }
    }

    #[test]
    fn replacement_matches_sites_by_id_and_counts_changes() {
        let roster = Roster::new(
            sites(
                "sites:\n  - {name: a, url: 'http://one.test/'}\n  - {name: b, url: 'http://one.test/b'}\n  - {name: c, url: 'http://two.test/'}\n",
            ),
            &opts(),
        );
        let r = roster.replace(sites(
            "sites:\n  - {name: d, url: 'http://three.test/'}\n  - {name: c, url: 'http://two.test/', interval: 5s, timeout: 1s}\n  - {name: b, url: 'http://one.test/b'}\n",
        ));
        assert_eq!(r.changes, Changes { added: 1, removed: 1, changed: 1, unchanged: 1 });
        assert_eq!(r.previous, vec![NEW, 2, 1]);
        // one.test keeps its pool: permits held by checks from before still count.
        assert!(Arc::ptr_eq(&r.roster.sites[2].host, &roster.sites[1].host));
        assert!(Arc::ptr_eq(&r.roster.sites[1].host, &roster.sites[2].host));
        assert_eq!(r.roster.sites[0].host.available_permits(), 2);
    }

    #[test]
    fn a_check_under_way_is_carried_across_replacements_until_it_is_over() {
        let list =
            "sites:\n  - {name: a, url: 'http://one.test/'}\n  - {name: b, url: 'http://one.test/b'}\n";
        let first = Roster::new(sites(list), &opts());
        first.sites[1].busy.store(true, Ordering::Release);
        let second = first.replace(sites(list));
        let mut carried = Carried::default().across(&first.sites, &second.previous);
        assert!(!carried.busy(0));
        assert!(carried.busy(1), "b's check from before the replacement is still under way");
        // Another replacement (b moves to index 0) still sees the first roster's check.
        let third = second.roster.replace(sites("sites:\n  - {name: b, url: 'http://one.test/b'}\n"));
        let mut carried = carried.across(&second.roster.sites, &third.previous);
        assert!(carried.busy(0));
        first.sites[1].busy.store(false, Ordering::Release);
        assert!(!carried.busy(0), "the check is over");
        assert!(carried.is_empty(), "the earlier rosters are let go");
    }

    #[test]
    fn an_entry_stays_small_and_its_catch_up_takes_every_slot_before_the_takeover() {
        // A million sites: each byte here is a megabyte of the producer's RSS.
        assert!(std::mem::size_of::<Scheduled>() <= 112, "{}", std::mem::size_of::<Scheduled>());
        let roster = Roster::new(sites("sites:\n  - {name: a, url: 'http://one.test/'}\n"), &opts());
        let e = &roster.sites[0];
        let now = 1_700_000_000_250_000;
        assert!(!e.is_catch_up(now - 10_000_000), "not taken over: no catch-up");
        e.catch_up_until(now);
        assert!(
            e.is_catch_up(now - 1) && e.is_catch_up(now - 3_600_000_000),
            "every slot before the takeover"
        );
        assert!(!e.is_catch_up(now + 1_000_000), "a slot a second later is the site's own");
    }
}
