//! The StatusStore contract, run against both adapters (PostgreSQL and SQLite): idempotent
//! history, a latest status that never moves backwards, failure runs, and retention.

use chrono::{DateTime, Duration, TimeZone, Utc};
use sitemon::config::{PostgresConfig, Secret};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind};
use sitemon::ports::StatusStore;
use sitemon::store::{PgStore, SqliteStore};

use crate::support;

fn at(secs_ago: i64, now: DateTime<Utc>, up: bool) -> CheckResult {
    let t = now - Duration::seconds(secs_ago);
    let mut r = CheckResult::new("site", "http://x/", "r", t, t, CheckStatus::Success);
    if !up {
        r.fail(FailureKind::Connect, "refused");
    }
    r
}

async fn contract<S: StatusStore>(store: &S, history: impl AsyncFn() -> i64) {
    let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
    let (f1, f2, ok3, f4, f5) =
        (at(50, now, false), at(40, now, false), at(30, now, true), at(20, now, false), at(10, now, false));

    store.store(std::slice::from_ref(&f1), &[]).await.unwrap();
    store.store(std::slice::from_ref(&f2), &[]).await.unwrap();
    let s = &store.latest().await.unwrap()[0];
    assert_eq!(
        (s.status, s.consecutive_failures, s.status_since),
        (CheckStatus::Failure, 2, f1.scheduled_at)
    );

    store.store(std::slice::from_ref(&ok3), &[]).await.unwrap();
    // A duplicate and an out-of-order older result change nothing.
    store.store(&[f2.clone(), ok3.clone()], &[]).await.unwrap();
    store.store(std::slice::from_ref(&f1), &[]).await.unwrap();
    let s = &store.latest().await.unwrap()[0];
    assert_eq!(
        (s.status, s.consecutive_failures, s.status_since),
        (CheckStatus::Success, 0, ok3.scheduled_at)
    );
    assert_eq!(history().await, 3, "history is idempotent");

    // Two failures in one batch, delivered newest first.
    store.store(&[f5.clone(), f4.clone()], &[]).await.unwrap();
    let s = &store.latest().await.unwrap()[0];
    assert_eq!(
        (s.status, s.consecutive_failures, s.status_since),
        (CheckStatus::Failure, 2, f4.scheduled_at)
    );
    assert_eq!(s.scheduled_at, f5.scheduled_at);
    assert_eq!(s.failure_kind, Some(FailureKind::Connect));

    // Retention: a result from 40 days ago goes, recent ones stay.
    let mut old = at(40 * 86_400, now, true);
    old.site_id = "old".into();
    old.check_id = sitemon::domain::check_id("old", "r", old.scheduled_at);
    store.store(&[old], &[]).await.unwrap();
    assert_eq!(history().await, 6);
    let removed = store.prune(now - Duration::days(30)).await.unwrap();
    assert!(removed >= 1);
    assert_eq!(history().await, 5);
}

/// A PgStore with a pool of `connections` on a fresh, migrated database, and that database's URL.
async fn migrated_pg_store(connections: u32) -> (PgStore, String) {
    let url = support::fresh_database().await;
    let cfg = PostgresConfig { url: Secret::new(url.clone()), max_connections: connections };
    let store = PgStore::connect(&cfg).unwrap();
    store.migrate().await.unwrap();
    (store, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_store_keeps_the_contract() {
    let (store, url) = migrated_pg_store(2).await;
    contract(&store, async || {
        let mut c = support::connect(&url).await;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM check_results").fetch_one(&mut c).await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let url = format!("sqlite://{}", path.display());
    contract(&store, async || {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM check_results").fetch_one(&mut c).await.unwrap()
    })
    .await;
}

/// Every history column as stored by the COPY path (new rows) and by the INSERT path (a batch
/// that repeats a stored row falls back to it), read back as the database holds it. One pool
/// connection: history and latest status share one transaction (the contract above runs with two).
#[tokio::test(flavor = "multi_thread")]
async fn postgres_history_keeps_every_field() {
    let (store, url) = migrated_pg_store(1).await;
    let t = Utc.timestamp_micros(Utc::now().timestamp_micros() - 1_234_567).unwrap();
    let full = |site: &str| {
        let mut r = CheckResult::new(
            site,
            "https://a.test/ä?q=1\t2",
            "eu-1",
            t,
            t + Duration::microseconds(7),
            CheckStatus::Success,
        );
        r.fail(FailureKind::PatternNotFound, "line 1\nline \\2");
        r.status_code = Some(503);
        r.http_version = Some("HTTP/1.1".into());
        r.remote_addr = Some("[::1]:443".into());
        (r.dns_us, r.connect_us, r.tls_us, r.ttfb_us, r.total_us, r.body_bytes) =
            (Some(1), Some(2), Some(3), Some(4), Some(i64::MAX), Some(0));
        r.pattern = Some("ok|fine".into());
        r.pattern_matched = Some(false);
        r.tls_not_after = Some(Utc.timestamp_micros(-1).unwrap());
        r
    };
    let (copied, inserted) = (full("copied"), full("inserted"));
    let bare = CheckResult::new("bare", "http://b/", "eu-1", t, t, CheckStatus::Missed);
    store.store(&[copied.clone(), bare.clone()], &[]).await.unwrap();
    store.store(&[copied.clone(), inserted.clone()], &[]).await.unwrap();

    let mut c = support::connect(&url).await;
    type Row = (
        uuid::Uuid,
        String,
        String,
        String,
        DateTime<Utc>,
        DateTime<Utc>,
        String,
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<String>,
        Option<String>,
    );
    type Tail = (
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<bool>,
        Option<DateTime<Utc>>,
    );
    for want in [&copied, &inserted, &bare] {
        let head: Row = sqlx::query_as(
            "SELECT check_id, site_id, url, region, scheduled_at, started_at, status, failure_kind, error, \
             status_code, http_version, remote_addr FROM check_results WHERE site_id = $1",
        )
        .bind(&want.site_id)
        .fetch_one(&mut c)
        .await
        .unwrap();
        let tail: Tail = sqlx::query_as(
            "SELECT dns_us, connect_us, tls_us, ttfb_us, total_us, body_bytes, pattern, pattern_matched, \
             tls_not_after FROM check_results WHERE site_id = $1",
        )
        .bind(&want.site_id)
        .fetch_one(&mut c)
        .await
        .unwrap();
        let w = want;
        assert_eq!(
            head,
            (
                w.check_id,
                w.site_id.clone(),
                w.url.clone(),
                w.region.clone(),
                w.scheduled_at,
                w.started_at,
                w.status.as_str().to_owned(),
                w.failure_kind.map(|k| k.as_str().to_owned()),
                w.error.clone(),
                w.status_code.map(i32::from),
                w.http_version.clone(),
                w.remote_addr.clone(),
            )
        );
        assert_eq!(
            tail,
            (
                w.dns_us,
                w.connect_us,
                w.tls_us,
                w.ttfb_us,
                w.total_us,
                w.body_bytes,
                w.pattern.clone(),
                w.pattern_matched,
                w.tls_not_after
            )
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM check_results").fetch_one(&mut c).await.unwrap();
    assert_eq!(rows, 3, "the repeated row is stored once");
}

/// The latest status an in-order, exactly-once stream of `stored` gives: the newest non-MISSED
/// result, and the run in its state since the newest result in the other state.
fn oracle(stored: &[CheckResult], site: &str) -> Option<(CheckStatus, i32, DateTime<Utc>, DateTime<Utc>)> {
    let mut rs: Vec<&CheckResult> =
        stored.iter().filter(|r| r.site_id == site && r.status != CheckStatus::Missed).collect();
    rs.sort_by_key(|r| r.scheduled_at);
    rs.dedup_by_key(|r| r.scheduled_at);
    let newest = *rs.last()?;
    let run: Vec<_> = rs.iter().rev().take_while(|r| r.is_up() == newest.is_up()).collect();
    let failures = if newest.is_up() { 0 } else { run.len() as i32 };
    Some((newest.status, failures, run.last().unwrap().scheduled_at, newest.scheduled_at))
}

/// A small deterministic generator (xorshift64*), so a failing sequence can be replayed.
/// Replays, overlaps and out-of-order batches: after every batch, `consecutive_failures`,
/// `status_since` and the newest result equal what the in-order, exactly-once stream of the
/// distinct results stored so far gives.
async fn replays_and_reordering<S: StatusStore>(store: &S, seed: u64) {
    let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
    let mut rng = support::Rng::new(seed);
    let sites = ["a", "b", "c"];
    let mut all = Vec::new();
    for site in sites {
        for k in 0..40 {
            let t = now - Duration::seconds(1000 - 10 * k);
            let mut r = CheckResult::new(site, "http://x/", "r", t, t, CheckStatus::Success);
            match rng.below(10) {
                0..=4 => r.fail(FailureKind::Timeout, "slow"),
                5 => r.status = CheckStatus::Missed,
                _ => {}
            }
            all.push(r);
        }
    }
    let mut stored: Vec<CheckResult> = Vec::new();
    for round in 0..60 {
        // Mostly the next results in order, sometimes an older stretch again (a replay after a
        // rebalance), sometimes a shuffled mix of old and new (out-of-order arrival).
        let size = 1 + rng.below(8) as usize;
        let mut batch: Vec<CheckResult> =
            (0..size).map(|_| all[rng.below(all.len() as u64) as usize].clone()).collect();
        if rng.below(3) == 0 && !stored.is_empty() {
            let start = rng.below(stored.len() as u64) as usize;
            batch.extend(stored[start..].iter().take(5).cloned());
        }
        store.store(&batch, &[]).await.unwrap();
        stored.extend(batch);
        let latest = store.latest().await.unwrap();
        for site in sites {
            let got = latest
                .iter()
                .find(|s| s.site_id == site)
                .map(|s| (s.status, s.consecutive_failures, s.status_since, s.scheduled_at));
            assert_eq!(got, oracle(&stored, site), "seed {seed}, round {round}, site {site}");
        }
    }
}

/// The case an operator hits after a rebalance: `[f1]` stored, then `[f1, f2]` replayed.
async fn replayed_failure_counts_once<S: StatusStore>(store: &S) {
    let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
    let (f1, f2) = (at(20, now, false), at(10, now, false));
    store.store(std::slice::from_ref(&f1), &[]).await.unwrap();
    store.store(&[f1.clone(), f2.clone()], &[]).await.unwrap();
    let s = &store.latest().await.unwrap()[0];
    assert_eq!((s.consecutive_failures, s.status_since), (2, f1.scheduled_at));
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_latest_status_is_exact_under_replays_and_reordering() {
    let (store, _) = migrated_pg_store(2).await;
    replayed_failure_counts_once(&store).await;
    for seed in [1, 7, 42] {
        let (store, _) = migrated_pg_store(2).await;
        replays_and_reordering(&store, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_latest_status_is_exact_under_replays_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("r.db")).await.unwrap();
    replayed_failure_counts_once(&store).await;
    for seed in [1, 7, 42] {
        let store = SqliteStore::open(&dir.path().join(format!("s{seed}.db"))).await.unwrap();
        replays_and_reordering(&store, seed).await;
    }
}

/// Two stores (two consumers) writing overlapping batches of the same sites at the same time,
/// as during a rebalance: history once, and the latest status as the in-order stream gives it.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_latest_status_is_exact_with_two_writers() {
    let (one, url) = migrated_pg_store(2).await;
    let cfg = PostgresConfig { url: Secret::new(url.clone()), max_connections: 2 };
    let two = PgStore::connect(&cfg).unwrap();
    let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
    let mut rng = support::Rng::new(99);
    let mut all = Vec::new();
    for k in 0..200 {
        for site in ["a", "b", "c", "d"] {
            let t = now - Duration::seconds(2000 - 10 * k);
            let mut r = CheckResult::new(site, "http://x/", "r", t, t, CheckStatus::Success);
            if rng.below(2) == 0 {
                r.fail(FailureKind::Connect, "refused");
            }
            all.push(r);
        }
    }
    // Each writer stores the stream in its own batch sizes; the second starts behind the first
    // and replays what the first stored, as a new partition owner does.
    let (a, b) = (all.clone(), all.clone());
    let first = async {
        for chunk in a.chunks(7) {
            support::store_retrying(&one, chunk).await;
        }
    };
    let second = async {
        for chunk in b.chunks(13) {
            support::store_retrying(&two, chunk).await;
        }
    };
    tokio::join!(first, second);
    let mut c = support::connect(&url).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM check_results").fetch_one(&mut c).await.unwrap();
    assert_eq!(rows, all.len() as i64);
    let latest = one.latest().await.unwrap();
    for site in ["a", "b", "c", "d"] {
        let got = latest
            .iter()
            .find(|s| s.site_id == site)
            .map(|s| (s.status, s.consecutive_failures, s.status_since, s.scheduled_at));
        assert_eq!(got, oracle(&all, site), "site {site}");
    }
}

/// Issue #17's future-dated result, on the latest status: a success dated 90 s ahead (within
/// the consumer's bound), then three present failures. Whether they come one per batch or all in
/// one, the present failures are shown (the future success is passed over, not counted in their
/// run); a result dated after it is then recomputed across it (a run of one, not four).
async fn a_future_result_hides_nothing<S: StatusStore>(store: &S) {
    let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
    let of = |site: &str, secs_ago: i64, up: bool| {
        let mut r = at(secs_ago, now, up);
        r.site_id = site.into();
        r.check_id = sitemon::domain::check_id(site, "r", r.scheduled_at);
        r
    };
    let shown = async |site: &str| {
        let latest = store.latest().await.unwrap();
        let s = latest.iter().find(|s| s.site_id == site).expect("a status");
        (s.status, s.consecutive_failures, s.status_since, s.scheduled_at)
    };
    for (site, one_batch) in [("one-per-batch", false), ("one-batch", true)] {
        let (ok, future) = (of(site, 40, true), of(site, -90, true));
        let failures = [of(site, 30, false), of(site, 20, false), of(site, 10, false)];
        let mut stream = vec![ok, future.clone()];
        stream.extend(failures.iter().cloned());
        if one_batch {
            store.store(&stream, &[]).await.unwrap();
        } else {
            store.store(&stream[..2], &[]).await.unwrap();
            assert_eq!(
                shown(site).await.3,
                future.scheduled_at,
                "{site}: the newest result received is shown, ahead or not"
            );
            for r in &stream[2..] {
                store.store(std::slice::from_ref(r), &[]).await.unwrap();
            }
        }
        assert_eq!(
            shown(site).await,
            (CheckStatus::Failure, 3, failures[0].scheduled_at, failures[2].scheduled_at),
            "{site}: the present failures, the future success passed over"
        );
        // Later than the success from the future: its run starts after it.
        let after = of(site, -100, false);
        store.store(std::slice::from_ref(&after), &[]).await.unwrap();
        assert_eq!(
            shown(site).await,
            (CheckStatus::Failure, 1, after.scheduled_at, after.scheduled_at),
            "{site}: a result after the passed-over one counts from it"
        );
    }
}

/// The other cases of results dated ahead: a region whose clock runs ahead keeps showing its
/// newest when an older result arrives late; a result from the future that arrives last is
/// shown until a present one comes; and once the clock reaches a passed-over result, the status
/// is the same whichever of two present results came before and after that moment.
async fn results_ahead_in_every_order<S: StatusStore>(store: &S) {
    let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).unwrap();
    let of = |site: &str, secs_ahead: i64, up: bool| {
        let mut r = at(-secs_ahead, now, up);
        r.site_id = site.into();
        r.check_id = sitemon::domain::check_id(site, "r", r.scheduled_at);
        r
    };
    let shown = async |site: &str| {
        let latest = store.latest().await.unwrap();
        let s = latest.iter().find(|s| s.site_id == site).expect("a status");
        (s.status, s.consecutive_failures, s.scheduled_at)
    };
    // A region a minute ahead: its late result does not take the status back.
    let (a0, a1, a2) = (of("ahead", 40, false), of("ahead", 50, false), of("ahead", 60, true));
    store.store(&[a1, a2.clone()], &[]).await.unwrap();
    store.store(std::slice::from_ref(&a0), &[]).await.unwrap();
    assert_eq!(shown("ahead").await, (CheckStatus::Success, 0, a2.scheduled_at), "its newest");

    // Present failures, then a success from the future: shown, until a present result comes.
    let fails: Vec<CheckResult> = (1..=3).map(|k| of("last", -40 + 10 * k, false)).collect();
    let future = of("last", 90, true);
    let mut batch = fails.clone();
    batch.push(future.clone());
    store.store(&batch, &[]).await.unwrap();
    assert_eq!(shown("last").await, (CheckStatus::Success, 0, future.scheduled_at));
    let present = of("last", -5, false);
    store.store(std::slice::from_ref(&present), &[]).await.unwrap();
    assert_eq!(shown("last").await, (CheckStatus::Failure, 4, present.scheduled_at));

    // A success 8 s ahead (past the slack) with failures p0 < p1 before it, stored in two
    // orders, the second half after the clock reached it: the same status either way.
    let base = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let when = |site: &str, secs: i64, up: bool| {
        let mut r = at(0, base + Duration::seconds(secs), up);
        r.site_id = site.into();
        r.check_id = sitemon::domain::check_id(site, "r", r.scheduled_at);
        r
    };
    let f = |site: &str| when(site, 8, true);
    let (p0, p1) = (|site: &str| when(site, -2, false), |site: &str| when(site, -1, false));
    store.store(&[f("order-a"), p0("order-a")], &[]).await.unwrap();
    store.store(&[f("order-b"), p1("order-b")], &[]).await.unwrap();
    assert_eq!(shown("order-a").await.2, p0("order-a").scheduled_at, "passed over while ahead");
    let reached = f("order-a").scheduled_at - sitemon::store::AHEAD_SLACK;
    support::wait_for(std::time::Duration::from_secs(20), || async { (Utc::now() > reached).then_some(()) })
        .await
        .expect("the clock reaches the result");
    store.store(&[p1("order-a")], &[]).await.unwrap();
    store.store(&[p0("order-b")], &[]).await.unwrap();
    let want = (CheckStatus::Success, 0, f("order-a").scheduled_at);
    assert_eq!(shown("order-a").await, want, "reached: counted again");
    assert_eq!(shown("order-b").await, want, "the same whatever the order");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_future_result_hides_nothing() {
    let (store, _) = migrated_pg_store(2).await;
    a_future_result_hides_nothing(&store).await;
    results_ahead_in_every_order(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_a_future_result_hides_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("f.db")).await.unwrap();
    a_future_result_hides_nothing(&store).await;
    results_ahead_in_every_order(&store).await;
}
