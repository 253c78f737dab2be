//! A publisher that keeps every result it is given, for the paused-time producer tests.

use std::sync::Mutex;
use std::time::Duration;

use sitemon::domain::{CheckResult, CheckStatus};
use sitemon::ports::{PublishError, StatusPublisher};

#[derive(Default)]
pub struct Collect(pub Mutex<Vec<CheckResult>>);

impl Collect {
    /// One result per slot accounted for: every record, and for each slot of a run of missed
    /// slots a record carries, a MISSED result of that slot (its error says it was carried).
    pub fn slots(&self) -> Vec<CheckResult> {
        slots(&self.0.lock().unwrap())
    }
}

/// `records` with the runs they carry spread into one MISSED result per slot (see
/// [`Collect::slots`]).
pub fn slots(records: &[CheckResult]) -> Vec<CheckResult> {
    let mut all = Vec::with_capacity(records.len());
    for r in records {
        for at in r.carried_slots() {
            let mut m =
                CheckResult::new(&r.site_id, &r.url, &r.region, at, r.started_at, CheckStatus::Missed);
            m.error = Some("carried on a later record".into());
            all.push(m);
        }
        let mut r = r.clone();
        (r.missed_since, r.missed_slots) = (None, None);
        all.push(r);
    }
    all
}

impl StatusPublisher for Collect {
    async fn publish(&self, result: &CheckResult) -> Result<(), PublishError> {
        self.0.lock().unwrap().push(result.clone());
        Ok(())
    }
    async fn flush(&self, _deadline: Duration) -> Result<(), PublishError> {
        Ok(())
    }
    fn is_connected(&self) -> bool {
        true
    }
}
