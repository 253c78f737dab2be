//! [`MemoryTx`]: the batch core's primitives over plain maps, with the contracts of the SQL
//! ones (duplicates skipped, tracks stored as rows (encoded), an incident's stored start kept, an event
//! written once, in order), so the batch and incident invariants are unit-tested without a
//! database. A transaction is a copy of [`MemoryDb`] that replaces it when it commits.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::batch::{Fresh, HistoryTx, IncidentTx};
use super::latest::LatestRow;
use super::track_row::{Encoded, SiteRow};
use crate::domain::{CheckResult, Incident, IncidentEvent};
use crate::ports::{DeadLetter, StoreError};

#[derive(Debug, Clone, Default)]
pub struct MemoryDb {
    pub history: BTreeMap<(DateTime<Utc>, Uuid), CheckResult>,
    pub dead: BTreeMap<(String, i32, i64), DeadLetter>,
    /// Every (site, region, scheduled_at) handed to the latest-status fold, in order.
    pub latest_folded: Vec<(String, String, DateTime<Utc>)>,
    /// Each site's tracks row, as the databases store it.
    pub tracks: BTreeMap<String, String>,
    /// Sites locked by the transaction (a lock is only recorded: one writer here).
    pub locked: HashSet<String>,
    pub incidents: HashMap<Uuid, Incident>,
    /// The outbox, in the order events were written.
    pub events: Vec<IncidentEvent>,
}

pub struct MemoryTx<'a>(pub &'a mut MemoryDb);

impl HistoryTx for MemoryTx<'_> {
    async fn append(&mut self, results: &[&CheckResult], dead: &[DeadLetter]) -> Result<Fresh, StoreError> {
        let mut new = HashSet::new();
        for r in results {
            let key = (r.scheduled_at, r.check_id);
            if let std::collections::btree_map::Entry::Vacant(e) = self.0.history.entry(key) {
                e.insert((*r).clone());
                new.insert(key);
            }
        }
        for d in dead {
            let p = &d.position;
            self.0.dead.entry((p.topic.clone(), p.partition, p.offset)).or_insert_with(|| d.clone());
        }
        Ok(Fresh::Only(new))
    }

    async fn fold_latest(&mut self, rows: &[LatestRow<'_>]) -> Result<(), StoreError> {
        let folded =
            rows.iter().map(|l| (l.result.site_id.clone(), l.result.region.clone(), l.result.scheduled_at));
        self.0.latest_folded.extend(folded);
        Ok(())
    }
}

impl IncidentTx for MemoryTx<'_> {
    async fn lock_tracks(&mut self, sites: &[&str]) -> Result<Vec<SiteRow>, StoreError> {
        assert!(sites.windows(2).all(|w| w[0] < w[1]), "sites are locked sorted and distinct");
        self.0.locked.extend(sites.iter().map(|s| s.to_string()));
        Ok(sites
            .iter()
            .filter_map(|s| {
                let tracks = self.0.tracks.get(*s)?.clone();
                Some(SiteRow { site_id: s.to_string(), tracks })
            })
            .collect())
    }

    async fn incidents(&mut self, ids: &[Uuid]) -> Result<Vec<Incident>, StoreError> {
        Ok(ids.iter().filter_map(|id| self.0.incidents.get(id).cloned()).collect())
    }

    async fn write_tracks(&mut self, sites: &[Encoded<'_>]) -> Result<(), StoreError> {
        for s in sites {
            assert!(self.0.locked.contains(s.site_id), "tracks are written under the site's lock");
            self.0.tracks.insert(s.site_id.to_owned(), s.tracks.clone());
        }
        Ok(())
    }

    async fn write_incidents(&mut self, incidents: &[Incident]) -> Result<(), StoreError> {
        for i in incidents {
            match self.0.incidents.get_mut(&i.incident_id) {
                // ON CONFLICT: only the end, the regions and the failed checks change.
                Some(stored) => {
                    (stored.ended_at, stored.regions, stored.failed_checks, stored.end_reason) =
                        (i.ended_at, i.regions.clone(), i.failed_checks, i.end_reason);
                }
                None => {
                    self.0.incidents.insert(i.incident_id, i.clone());
                }
            }
        }
        Ok(())
    }

    async fn write_events(&mut self, events: &[IncidentEvent]) -> Result<(), StoreError> {
        for e in events {
            if !self.0.events.iter().any(|x| x.event_id == e.event_id) {
                self.0.events.push(e.clone());
            }
        }
        Ok(())
    }
}
