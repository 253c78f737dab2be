//! The producer's metrics a fleet adds up: the schedule lag and the check duration as histograms
//! (the buckets of `metric::BUCKETS`) labelled by region, the duration also by failure kind, with
//! their handles made once; and how much of its check concurrency is in use.

use metrics::{Gauge, Histogram};

use crate::domain::{CheckResult, FailureKind};

pub(super) struct Instruments {
    lag: Histogram,
    /// Check durations of the checks that found the site up, then by failure kind.
    up: Histogram,
    failed: Vec<(FailureKind, Histogram)>,
    saturation: Gauge,
    /// Checks holding a permit; the gauge is set under this lock, so two checks ending at once
    /// cannot leave it at the earlier one's value.
    busy: std::sync::Mutex<usize>,
    max: usize,
}

impl Instruments {
    pub(super) fn new(region: &str, max_concurrency: usize) -> Self {
        let check = |kind: &'static str| metrics::histogram!(crate::metric::CHECK_SECONDS, "region" => region.to_owned(), "failure_kind" => kind);
        Instruments {
            lag: metrics::histogram!(crate::metric::SCHEDULE_LAG, "region" => region.to_owned()),
            up: check("NONE"),
            failed: FailureKind::ALL.iter().map(|k| (*k, check(k.as_str()))).collect(),
            saturation: metrics::gauge!(crate::metric::PRODUCER_SATURATION),
            busy: std::sync::Mutex::new(0),
            max: max_concurrency.max(1),
        }
    }

    /// One check: `lag` seconds after its slot, and how long it took.
    pub(super) fn checked(&self, lag: f64, r: &CheckResult) {
        self.lag.record(lag);
        if let Some(us) = r.total_us {
            let by_kind = |k| self.failed.iter().find(|(x, _)| *x == k).map(|(_, h)| h);
            r.failure_kind.and_then(by_kind).unwrap_or(&self.up).record(us as f64 / 1e6);
        }
    }

    /// A check took its permit (`true`) or gave it back.
    pub(super) fn in_use(&self, taken: bool) {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        *busy = if taken { *busy + 1 } else { busy.saturating_sub(1) };
        self.saturation.set(*busy as f64 / self.max as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckStatus;

    #[test]
    fn a_fleets_figures_add_up_by_bucket_region_and_failure_kind() {
        let recorder = crate::ops_server::metrics_exporter().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let i = Instruments::new("eu", 4);
            let t = chrono::Utc::now();
            let mut up = CheckResult::new("s", "http://x/", "eu", t, t, CheckStatus::Success);
            up.total_us = Some(30_000);
            let mut down = up.clone();
            down.fail(FailureKind::Timeout, "timed out");
            down.total_us = Some(2_000_000);
            i.checked(0.0015, &up);
            i.checked(0.0003, &down);
            for taken in [true, true, true, true, false] {
                i.in_use(taken);
            }
        });
        let text = handle.render();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        has(r#"sitemon_schedule_lag_seconds_bucket{region="eu",le="0.0005"} 1"#);
        has(r#"sitemon_schedule_lag_seconds_bucket{region="eu",le="0.002"} 2"#);
        has(r#"sitemon_check_seconds_bucket{region="eu",failure_kind="NONE",le="0.05"} 1"#);
        has(r#"sitemon_check_seconds_bucket{region="eu",failure_kind="TIMEOUT",le="1"} 0"#);
        has(r#"sitemon_check_seconds_bucket{region="eu",failure_kind="TIMEOUT",le="2.5"} 1"#);
        has("sitemon_producer_saturation 0.75");
    }
}
