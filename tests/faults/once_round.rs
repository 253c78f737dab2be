//! `producer --once` checks every site once however long the caps make the round: 20 sites
//! of 300 ms behind one permit per host take about 6 s, past the longest timeout plus grace.

use std::time::Duration;

use crate::harness::{ONE_AT_A_TIME, Setup, logged_count, topic_records};
use crate::support::{describe, sitemon, sites};

#[tokio::test(flavor = "multi_thread")]
async fn once_finishes_the_round_behind_a_one_permit_host() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    let mut text = format!(
        "region: faults\nkafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {}\nproducer:\n  per_host_concurrency: 1\nsites:\n",
        s.topic
    );
    for i in 0..20 {
        text.push_str(&format!("  - {{name: paused-{i:02}, url: 'http://{addr}/pause', timeout: 1s}}\n"));
    }
    let cfg = s.write("once.yaml", &text);
    let out =
        sitemon(&["producer", "--once", "--grace", "1s", "-c", &cfg], &s.env(), Duration::from_secs(60))
            .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!((logged_count(&log, "published"), logged_count(&log, "missed")), (Some(20), Some(0)), "{log}");
    assert_eq!(topic_records(&s.topic), 20);
}
