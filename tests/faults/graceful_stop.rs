//! Fault 4: SIGTERM to producer and consumer drains cleanly: the producer exits 0 within its
//! grace period with every slot published, nothing left unflushed, nothing stored twice when a
//! new consumer takes over.

use std::time::Duration;

use crate::harness::{self, ONE_AT_A_TIME, Setup, logged_count, rows, spawn, topic_records, try_history};
use crate::support::{describe, sitemon, sites, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_producer_and_consumer() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    // The slow site is mid-check at any moment, so SIGTERM always finds work in flight.
    let extra = "defaults:\n  timeout: 900ms\n";
    let mut text = harness::config(addr, 30, "1s", &s.topic, "faults", extra);
    text.push_str(&format!("  - {{name: slow, url: 'http://{addr}/slow', interval: 2s, timeout: 1500ms}}\n"));
    let cfg = s.write("p.yaml", &text);

    let grace = Duration::from_secs(5);
    let producer = spawn(&["producer", "-c", &cfg, "--grace", "5s"], &s.env());
    let enough =
        wait_for(Duration::from_secs(30), || async { (topic_records(&s.topic) >= 60).then_some(()) }).await;
    assert!(enough.is_some(), "{}", producer.log.lock().unwrap());
    producer.signal("-TERM");
    let (code, log, took) = producer.finish_timed(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        took <= grace + Duration::from_secs(2),
        "stopped {took:?} after SIGTERM with --grace {grace:?}:\n{log}"
    );
    let published = logged_count(&log, "published").unwrap() as i64;
    assert_eq!(logged_count(&log, "failed"), Some(0), "{log}");
    assert_eq!(logged_count(&log, "abandoned"), Some(0), "{log}");
    assert_eq!(logged_count(&log, "slots"), Some(published as u64), "every slot published:\n{log}");
    assert_eq!(topic_records(&s.topic), published, "everything reported as published is in the topic");

    let consumer = spawn(&["consumer", "-c", &cfg], &s.env());
    let some =
        wait_for(Duration::from_secs(60), || async { try_history(&s.db).await.filter(|c| *c > 0) }).await;
    assert!(some.is_some(), "{}", consumer.log.lock().unwrap());
    consumer.signal("-TERM");
    let (code, log) = consumer.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "{log}");
    let stored_first = logged_count(&log, "stored").unwrap() as i64;
    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, stored_first);

    let out =
        sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &s.env(), Duration::from_secs(120))
            .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, published);
    let slow = rows(&s.db, "SELECT count(*) FROM check_results WHERE site_id = 'slow'").await;
    assert!(slow > 0, "the slow site's in-flight checks were finished and stored");
}
