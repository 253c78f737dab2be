//! The `ReportSource` contract on both stores: one site's daily counts, the incidents that
//! overlap a window, and the history read back whole and in order, page by page.

use chrono::{DateTime, Utc};
use sitemon::config::{PostgresConfig, Secret};
use sitemon::domain::{CheckResult, CheckStatus, Tally};
use sitemon::ports::{ReportSource, ResultKey, StatusStore};
use sitemon::store::{PgStore, SqliteStore};

use crate::support::report_data::{A_RESULTS, results, seeded_pg, seeded_sqlite, t};

async fn contract<S: ReportSource + StatusStore>(source: &S) {
    let (from, to) = (t(2026, 1, 31, 0, 0, 0), t(2026, 2, 2, 0, 0, 0));
    let days = source.daily("a", from, to).await.unwrap();
    let got: Vec<(String, Tally)> = days.iter().map(|d| (d.day.to_string(), d.tally)).collect();
    assert_eq!(
        got,
        [
            ("2026-01-31".to_owned(), Tally { successes: 2, failures: 2, missed: 1 }),
            ("2026-02-01".to_owned(), Tally { successes: 20, failures: 1, missed: 3 }),
        ]
    );

    // Overlap: the 2026-02-01 incident only; a window ending at its start excludes it, one
    // starting at its end too; the open one overlaps any window up to now.
    let ids =
        |v: Vec<sitemon::domain::Incident>| v.iter().map(|i| i.incident_id.as_u128()).collect::<Vec<_>>();
    assert_eq!(ids(source.incidents("a", from, to).await.unwrap()), [1]);
    assert_eq!(ids(source.incidents("a", from, t(2026, 2, 1, 0, 0, 0)).await.unwrap()), Vec::<u128>::new());
    assert_eq!(ids(source.incidents("a", t(2026, 2, 1, 0, 5, 0), to).await.unwrap()), Vec::<u128>::new());
    assert_eq!(ids(source.incidents("a", t(2026, 1, 1, 0, 0, 0), Utc::now()).await.unwrap()), [2, 1, 3]);
    let whole = &source.incidents("a", from, to).await.unwrap()[0];
    assert_eq!(
        (whole.region.as_deref(), whole.regions.clone()),
        (None, vec!["r1".to_owned(), "r2".to_owned()])
    );

    // Pages of 4 add up to the whole history of `a` in the window, in (scheduled_at, check_id) order.
    let all = pages(source, "a", from, to).await;
    assert_eq!(all.len(), A_RESULTS);
    let mut expected: Vec<CheckResult> = results().into_iter().filter(|r| r.site_id == "a").collect();
    expected.sort_by_key(|r| r.scheduled_at);
    let key = |r: &CheckResult| (r.scheduled_at, r.check_id, r.status, r.total_us, r.region.clone());
    assert_eq!(all.iter().map(key).collect::<Vec<_>>(), expected.iter().map(key).collect::<Vec<_>>());
    assert_eq!(all[1].error.as_deref(), Some("refused"), "every column read back");

    // Results at the same moment (six regions) are told apart by check id across pages.
    let at = t(2026, 2, 1, 8, 0, 0);
    let same: Vec<CheckResult> = (0..6)
        .map(|i| CheckResult::new("c", "http://c.test/", &format!("r{i}"), at, at, CheckStatus::Success))
        .collect();
    source.store(&same, &[]).await.unwrap();
    let mut got: Vec<String> = pages(source, "c", from, to).await.into_iter().map(|r| r.region).collect();
    got.sort();
    assert_eq!(got, ["r0", "r1", "r2", "r3", "r4", "r5"]);
}

/// Every result of `site` in the window, read in pages of 4.
async fn pages<S: ReportSource>(
    source: &S,
    site: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<CheckResult> {
    let mut all: Vec<CheckResult> = Vec::new();
    let mut after = None;
    loop {
        let page = source.results(site, from, to, after, 4).await.unwrap();
        assert!(page.len() <= 4);
        all.extend(page.iter().cloned());
        match page.last() {
            Some(last) if page.len() == 4 => {
                after = Some(ResultKey { scheduled_at: last.scheduled_at, check_id: last.check_id })
            }
            _ => return all,
        }
    }
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_report_source_keeps_the_contract() {
    let url = seeded_pg(now()).await;
    let store = PgStore::connect(&PostgresConfig { url: Secret::new(url), max_connections: 2 }).unwrap();
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_report_source_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    seeded_sqlite(&path, now()).await;
    contract(&SqliteStore::open(&path).await.unwrap()).await;
}
