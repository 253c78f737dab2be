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

/// The slots of the run of missed slots `r` carries, earliest first: `missed_slots` of them from
/// `missed_since`, one interval (`interval_ms`) apart.
fn carried_slots(r: &CheckResult) -> Vec<chrono::DateTime<chrono::Utc>> {
    let (Some(since), Some(n), Some(ms)) = (r.missed_since, r.missed_slots, r.interval_ms) else {
        return Vec::new();
    };
    (0..i64::from(n)).map(|k| since + chrono::Duration::milliseconds(k * i64::from(ms))).collect()
}

/// `records` with the runs they carry spread into one MISSED result per slot (see
/// [`Collect::slots`]).
pub fn slots(records: &[CheckResult]) -> Vec<CheckResult> {
    let mut all = Vec::with_capacity(records.len());
    for r in records {
        for at in carried_slots(r) {
            let mut m =
                CheckResult::new(&r.site_id, &r.url, &r.region, at, r.started_at, CheckStatus::Missed);
            m.error = Some("carried on a later record".into());
            m.interval_ms = r.interval_ms;
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
