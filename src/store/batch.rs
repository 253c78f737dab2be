//! The batch transaction written once for every database: history and dead letters, then the
//! latest status and the incidents folded from the rows that were new to the history. Each
//! database supplies only the primitives that really differ ([`HistoryTx`], [`IncidentTx`]:
//! bulk insert, locks, its SQL); `memory_tx.rs` is the in-memory one the unit tests use.

use std::collections::HashSet;
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::latest::{LatestRow, latest_per_site};
use super::track_row::{Encoded, SiteRow, Stored, changed, count};
use crate::domain::{CheckResult, Incident, IncidentEvent, Judging, derive_incidents};
use crate::ports::{DeadLetter, StoreError};

/// Which of a batch's results were new to the history.
pub enum Fresh {
    All,
    /// `(scheduled_at, check_id)` of the rows inserted; the others were stored before.
    Only(HashSet<(DateTime<Utc>, Uuid)>),
}

/// History and latest status, inside one transaction.
pub trait HistoryTx: Send {
    /// Appends the results (skipping those already stored) and the dead letters; says which
    /// results were new.
    fn append(
        &mut self,
        results: &[&CheckResult],
        dead: &[DeadLetter],
    ) -> impl Future<Output = Result<Fresh, StoreError>> + Send;

    /// Folds the new rows, one per site and region, into the latest status.
    fn fold_latest(&mut self, rows: &[LatestRow<'_>]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The incident tables, inside the same transaction.
pub trait IncidentTx: Send {
    /// Makes this transaction the only writer of these sites (sorted, distinct) until it ends,
    /// and reads their tracks as the writers before committed them (a site never seen has none).
    fn lock_tracks(
        &mut self,
        sites: &[&str],
    ) -> impl Future<Output = Result<Vec<SiteRow>, StoreError>> + Send;
    /// The incidents with these ids.
    fn incidents(&mut self, ids: &[Uuid]) -> impl Future<Output = Result<Vec<Incident>, StoreError>> + Send;
    /// Replaces these sites' tracks (encoded, `track_row::encode`).
    fn write_tracks(&mut self, sites: &[Encoded<'_>]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Inserts the incidents; of one already stored, only its end, regions and failed checks
    /// change.
    fn write_incidents(
        &mut self,
        incidents: &[Incident],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Adds the events to the outbox; one already there (same event id) stays as it is.
    fn write_events(
        &mut self,
        events: &[IncidentEvent],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The whole batch in the caller's transaction: a replay finds its rows stored and folds
/// nothing again; history, status and incidents commit together.
pub async fn store_batch<T: HistoryTx + IncidentTx>(
    tx: &mut T,
    results: Vec<&CheckResult>,
    dead: &[DeadLetter],
    judging: &Judging,
) -> Result<(), StoreError> {
    let new: Vec<&CheckResult> = match tx.append(&results, dead).await? {
        Fresh::All => results,
        Fresh::Only(mut keys) => {
            results.into_iter().filter(|r| keys.remove(&(r.scheduled_at, r.check_id))).collect()
        }
    };
    tx.fold_latest(&latest_per_site(&new, Utc::now())).await?;
    fold_incidents(tx, &new, judging).await
}

/// Folds the batch's new results into incidents: the sites are locked and their tracks and open
/// incidents read, the results folded (`domain::derive_incidents`), and what changed written
/// back — so a replay, a second writer or a restart derives each incident and event once.
pub async fn fold_incidents<T: IncidentTx>(
    tx: &mut T,
    new: &[&CheckResult],
    judging: &Judging,
) -> Result<(), StoreError> {
    let mut sites: Vec<&str> = new.iter().map(|r| r.site_id.as_str()).collect();
    if sites.is_empty() {
        return Ok(());
    }
    sites.sort_unstable();
    sites.dedup();
    let rows = Stored::decode(tx.lock_tracks(&sites).await?);
    let ids = rows.open_ids();
    let open = if ids.is_empty() { Vec::new() } else { tx.incidents(&ids).await? };
    let stored = rows.into_site_tracks(open);
    let mut tracks = stored.clone();
    let derived = derive_incidents(&mut tracks, new, judging);
    count(&derived);
    let changed = changed(&stored, &tracks);
    if !changed.is_empty() {
        tx.write_tracks(&changed).await?;
    }
    if !derived.incidents.is_empty() {
        tx.write_incidents(&derived.incidents).await?;
    }
    if !derived.events.is_empty() {
        tx.write_events(&derived.events).await?;
        metrics::counter!(crate::metric::INCIDENT_EVENTS).increment(derived.events.len() as u64);
    }
    Ok(())
}
