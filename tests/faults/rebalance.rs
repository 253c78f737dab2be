//! Fault 7: scale-out and scale-in under steady traffic. Two consumers join a group whose first
//! member is busy storing, then one leaves by SIGTERM and one is SIGKILLed: every consumer that
//! was not killed keeps running (and stops cleanly when asked), every record is stored exactly
//! once, and the latest status equals what the stored history gives.

use std::time::Duration;

use crate::harness::{
    self, ONE_AT_A_TIME, Running, Setup, logged_count, rows, spawn, status_mismatches, topic_records,
    try_history,
};
use crate::support::{sites, wait_for};

fn alive(r: &mut Running) -> bool {
    r.child.try_wait().expect("try_wait").is_none()
}

async fn assigned(r: &Running) -> bool {
    wait_for(Duration::from_secs(60), || async {
        r.log.lock().unwrap().contains("partitions assigned").then_some(())
    })
    .await
    .is_some()
}

/// Cooperative rebalancing (sitemon's default) moves only the partitions that change owner.
#[tokio::test(flavor = "multi_thread")]
async fn consumers_join_and_leave_under_traffic() {
    join_and_leave(None).await;
}

/// An eager strategy, which a user may configure through `kafka.properties`, revokes every
/// partition of every member at each rebalance: batches being stored lose all their partitions.
#[tokio::test(flavor = "multi_thread")]
async fn consumers_join_and_leave_under_traffic_with_eager_rebalancing() {
    join_and_leave(Some("range")).await;
}

async fn join_and_leave(strategy: Option<&str>) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    // 60 sites every 300 ms (200 results/s), a fifth of them failing, on the topic's 3 partitions.
    let mut text = harness::config(addr, 0, "300ms", &s.topic, "rebalance", "");
    if let Some(strategy) = strategy {
        let at = text.find("  postgres:").or_else(|| text.find("postgres:")).expect("a postgres section");
        text.insert_str(at, &format!("    partition.assignment.strategy: {strategy}\n"));
    }
    for i in 0..60 {
        let path = if i % 5 == 0 { "error" } else { "ok" };
        text.push_str(&format!(
            "  - {{name: site-{i:02}, url: 'http://{addr}/{path}', interval: 300ms, timeout: 250ms}}\n"
        ));
    }
    let cfg = s.write("c.yaml", &text);
    let producer = spawn(&["producer", "-c", &cfg], &s.env());
    let mut first = spawn(&["consumer", "-c", &cfg], &s.env());
    let started =
        wait_for(Duration::from_secs(60), || async { try_history(&s.db).await.filter(|c| *c > 200) }).await;
    assert!(started.is_some(), "first consumer stores nothing:\n{}", first.log.lock().unwrap());

    // Scale out while records keep arriving.
    let second = spawn(&["consumer", "-c", &cfg], &s.env());
    let third = spawn(&["consumer", "-c", &cfg], &s.env());
    assert!(assigned(&second).await, "second consumer never got partitions:\n{}", second.log.lock().unwrap());
    assert!(assigned(&third).await, "third consumer never got partitions:\n{}", third.log.lock().unwrap());
    let before = try_history(&s.db).await.unwrap_or(0);
    let moving = wait_for(Duration::from_secs(30), || async {
        try_history(&s.db).await.filter(|c| *c > before + 400)
    })
    .await;
    assert!(moving.is_some(), "storing stalled after the join");
    assert!(alive(&mut first), "the first consumer died in the rebalance:\n{}", first.log.lock().unwrap());

    // Scale in: one leaves politely, one is killed, under the same traffic.
    second.signal("-TERM");
    third.signal("-KILL");
    let (code, log) = second.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "SIGTERMed consumer:\n{log}");
    let (code, _) = third.finish(Duration::from_secs(10)).await;
    assert_eq!(code, None, "killed by a signal");
    let before = try_history(&s.db).await.unwrap_or(0);
    let moving = wait_for(Duration::from_secs(60), || async {
        try_history(&s.db).await.filter(|c| *c > before + 400)
    })
    .await;
    assert!(moving.is_some(), "storing stalled after the members left:\n{}", first.log.lock().unwrap());
    assert!(
        alive(&mut first),
        "the first consumer died when the others left:\n{}",
        first.log.lock().unwrap()
    );

    producer.signal("-TERM");
    let (code, log) = producer.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "producer:\n{log}");
    let published = logged_count(&log, "published").expect("published count") as i64;
    assert_eq!(topic_records(&s.topic), published);
    let drained =
        wait_for(Duration::from_secs(90), || async { try_history(&s.db).await.filter(|c| *c >= published) })
            .await;
    assert!(drained.is_some(), "not everything was stored:\n{}", first.log.lock().unwrap());
    first.signal("-TERM");
    let (code, log) = first.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "first consumer:\n{log}");

    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, published, "each record stored once");
    assert_eq!(rows(&s.db, "SELECT count(DISTINCT check_id) FROM check_results").await, published);
    assert_eq!(rows(&s.db, "SELECT count(*) FROM dead_letters").await, 0);
    let wrong = status_mismatches(&s.db).await;
    assert!(wrong.is_empty(), "latest status differs from the history: {wrong:#?}");
}
