//! `--once`: one round, every site checked once as soon as its permits allow; site-list reloads
//! do not apply.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::task::TaskTracker;

use super::roster::Scheduled;
use super::slot::Shared;
use crate::ports::{SiteProbe, StatusPublisher};

/// A task per site, each checked as soon as its permits allow. Returns when every check is done
/// (their deliveries may still be under way), or at shutdown.
pub(super) async fn once<P: SiteProbe, S: StatusPublisher>(s: &Arc<Shared<P, S>>, sites: Arc<[Scheduled]>) {
    let round = TaskTracker::new();
    s.slots.fetch_add(sites.len() as u64, Ordering::Relaxed);
    for i in 0..sites.len() {
        let (s2, all, token) = (s.clone(), sites.clone(), round.token());
        s.tracker.spawn(async move { s2.run_once(&all[i], token).await });
    }
    round.close();
    tokio::select! {
        _ = round.wait() => {}
        _ = s.shutdown.cancelled() => {}
    }
}
