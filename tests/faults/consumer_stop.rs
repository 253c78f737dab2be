//! Fault 8: SIGTERM reaches the consumer while records keep arriving, while the database is
//! down, and while the broker is down. Each time it stops within `--grace`: cleanly (exit 0)
//! under traffic and with the broker gone, and with the batch in hand reported as not stored
//! (exit 1) during the database outage; that batch is not acknowledged, so the next consumer
//! stores it and nothing is lost or doubled.

use std::time::{Duration, Instant};

use crate::harness::{self, ONE_AT_A_TIME, Setup, Stopped, logged_count, rows, spawn, try_history};
use crate::support::{describe, sitemon, sites, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn consumer_stops_within_grace_under_traffic_and_during_a_database_outage() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    let cfg = s.write("c.yaml", &harness::config(addr, 100, "1s", &s.topic, "stop", ""));
    let producer = spawn(&["producer", "-c", &cfg], &s.env());

    // Under steady traffic a batch is always waiting: the consumer must still look at the signal.
    let consumer = spawn(&["consumer", "-c", &cfg, "--grace", "3s"], &s.env());
    let some =
        wait_for(Duration::from_secs(60), || async { try_history(&s.db).await.filter(|c| *c > 150) }).await;
    assert!(some.is_some(), "{}", consumer.log.lock().unwrap());
    let asked = Instant::now();
    consumer.signal("-TERM");
    let (code, log) = consumer.finish(Duration::from_secs(20)).await;
    assert!(asked.elapsed() < Duration::from_secs(3 + 5), "took {:?} to stop:\n{log}", asked.elapsed());
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(logged_count(&log, "unstored"), Some(0), "{log}");

    // SIGTERM while the database is down and records keep arriving: the batch in hand cannot be
    // stored; the consumer says so and exits 1 within the grace period.
    let consumer = spawn(&["consumer", "-c", &cfg, "--grace", "3s"], &s.env());
    let more = rows(&s.db, "SELECT count(*) FROM check_results").await + 100;
    let resumed =
        wait_for(Duration::from_secs(60), || async { try_history(&s.db).await.filter(|c| *c > more) }).await;
    assert!(resumed.is_some(), "{}", consumer.log.lock().unwrap());
    {
        let _down = Stopped::postgres();
        let failing = wait_for(Duration::from_secs(30), || async {
            consumer.log.lock().unwrap().contains("storing the batch failed").then_some(())
        })
        .await;
        assert!(failing.is_some(), "the outage was not noticed:\n{}", consumer.log.lock().unwrap());
        let asked = Instant::now();
        consumer.signal("-TERM");
        let (code, log) = consumer.finish(Duration::from_secs(20)).await;
        assert!(asked.elapsed() < Duration::from_secs(3 + 5), "took {:?} to stop:\n{log}", asked.elapsed());
        assert_eq!(code, Some(1), "{log}");
        assert!(logged_count(&log, "unstored").is_some_and(|n| n > 0), "{log}");
    } // PostgreSQL starts again here

    // SIGTERM while the broker is down: leaving the group cannot reach it, and librdkafka's own
    // timeouts (up to a minute) must not hold the process past the grace period.
    let consumer = spawn(&["consumer", "-c", &cfg, "--grace", "3s"], &s.env());
    let more = rows(&s.db, "SELECT count(*) FROM check_results").await + 100;
    let resumed =
        wait_for(Duration::from_secs(60), || async { try_history(&s.db).await.filter(|c| *c > more) }).await;
    assert!(resumed.is_some(), "{}", consumer.log.lock().unwrap());
    {
        let _down = Stopped::kafka();
        let asked = Instant::now();
        consumer.signal("-TERM");
        let (code, log) = consumer.finish(Duration::from_secs(30)).await;
        assert!(asked.elapsed() < Duration::from_secs(3 + 5), "took {:?} to stop:\n{log}", asked.elapsed());
        assert_eq!(code, Some(0), "{log}");
    } // Kafka starts again here

    producer.signal("-TERM");
    let (code, log) = producer.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "{log}");
    let published = logged_count(&log, "published").expect("published") as i64;
    let out =
        sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &s.env(), Duration::from_secs(120))
            .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, published, "nothing lost or doubled");
    let wrong = harness::status_mismatches(&s.db).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
}
