//! Fault 6: SIGTERM while the broker is down and the producer's in-flight window is full. The
//! producer stops within its grace period, exits 1 and accounts for every slot: published,
//! failed (made but not acknowledged) or abandoned (no result).

use std::time::Duration;

use crate::harness::{
    self, ONE_AT_A_TIME, Setup, Stopped, http_get, listen_address, logged_count, spawn, topic_records,
};
use crate::support::{sites, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_broker_outage_with_a_full_window_stops_within_grace() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    let extra = "producer:\n  max_in_flight: 5\n";
    let cfg = s.write("p.yaml", &harness::config(addr, 20, "1s", &s.topic, "faults", extra));
    let (port, listen) = listen_address();
    let grace = Duration::from_secs(3);
    let producer = spawn(&["producer", "-c", &cfg, "--grace", "3s", "--listen", &listen], &s.env());

    let flowing =
        wait_for(Duration::from_secs(30), || async { (topic_records(&s.topic) >= 20).then_some(()) }).await;
    assert!(flowing.is_some(), "the producer did not publish:\n{}", producer.log.lock().unwrap());
    let (code, log, took) = {
        let _down = Stopped::kafka();
        // Nothing is acknowledged now: five results fill the window and the scheduler waits.
        let full = wait_for(Duration::from_secs(30), || async {
            let (_, metrics) = http_get(port, "/metrics").await?;
            metrics.lines().any(|l| l == "sitemon_results_in_flight 5").then_some(())
        })
        .await;
        assert!(full.is_some(), "the in-flight window did not fill:\n{}", producer.log.lock().unwrap());
        producer.signal("-TERM");
        producer.finish_timed(Duration::from_secs(60)).await
    }; // the broker starts again here
    assert!(
        took <= grace + Duration::from_secs(3),
        "stopped {took:?} after SIGTERM with --grace {grace:?}:\n{log}"
    );
    assert_eq!(code, Some(1), "undelivered results are a failure:\n{log}");
    let count = |key| logged_count(&log, key).unwrap_or_else(|| panic!("no {key}= in the log:\n{log}"));
    let (slots, published, failed, abandoned) =
        (count("slots"), count("published"), count("failed"), count("abandoned"));
    assert!(failed + abandoned > 0, "{log}");
    assert_eq!(slots, published + failed + abandoned, "every slot is accounted for:\n{log}");
    let stored = wait_for(Duration::from_secs(60), || async {
        let n = topic_records(&s.topic);
        (n >= published as i64).then_some(n)
    })
    .await;
    assert!(stored.is_some(), "results reported as published are missing from the topic:\n{log}");
}
