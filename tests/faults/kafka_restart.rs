//! Fault 1: the broker restarts while the producer runs. Every result the producer reports as
//! published reaches PostgreSQL exactly once.

use std::time::Duration;

use crate::harness::{self, ONE_AT_A_TIME, Setup, Stopped, logged_count, rows, spawn, topic_records};
use crate::support::{describe, sitemon, sites, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_loses_nothing_the_producer_reported() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    let cfg = s.write("p.yaml", &harness::config(addr, 40, "1s", &s.topic, "faults", ""));
    let producer = spawn(&["producer", "-c", &cfg, "--grace", "60s"], &s.env());

    let before = wait_for(Duration::from_secs(30), || async {
        let n = topic_records(&s.topic);
        (n >= 80).then_some(n)
    })
    .await;
    assert!(before.is_some(), "the producer did not publish 80 results within 30 s");
    {
        let _down = Stopped::kafka();
        // The fault under test: the broker stays away for a few seconds while checks go on.
        tokio::time::sleep(Duration::from_secs(4)).await;
    } // the broker starts again here
    let after = wait_for(Duration::from_secs(60), || async {
        let n = topic_records(&s.topic);
        (n >= before.unwrap() + 80).then_some(n)
    })
    .await;
    assert!(
        after.is_some(),
        "publishing did not resume after the broker came back:\n{}",
        producer.log.lock().unwrap()
    );

    producer.signal("-TERM");
    let (code, log) = producer.finish(Duration::from_secs(90)).await;
    assert_eq!(code, Some(0), "{log}");
    let published = logged_count(&log, "published").expect("producer reports what it published");
    assert_eq!(logged_count(&log, "failed"), Some(0), "{log}");

    let out =
        sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &s.env(), Duration::from_secs(120))
            .await;
    assert!(out.status.success(), "{}", describe(&out));
    let stored = rows(&s.db, "SELECT count(*) FROM check_results").await;
    let distinct = rows(&s.db, "SELECT count(DISTINCT check_id) FROM check_results").await;
    assert_eq!(stored, published as i64, "every published result stored, nothing else");
    assert_eq!(distinct, stored, "no duplicates");
}
