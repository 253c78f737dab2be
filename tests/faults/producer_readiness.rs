//! Fault 7: the producer's /readyz follows the broker: ready while it is reachable, not ready
//! while it is down, ready again once it is back; the results queued meanwhile are delivered.

use std::time::Duration;

use crate::harness::{self, ONE_AT_A_TIME, Setup, Stopped, http_get, listen_address, logged_count, spawn};
use crate::support::{sites, wait_for};

async fn readyz_is(port: u16, code: u16) -> Option<String> {
    http_get(port, "/readyz").await.filter(|(c, _)| *c == code).map(|(_, body)| body)
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_is_not_ready_while_the_broker_is_down() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    let cfg = s.write("p.yaml", &harness::config(addr, 10, "1s", &s.topic, "faults", ""));
    let (port, listen) = listen_address();
    let producer = spawn(&["producer", "-c", &cfg, "--grace", "60s", "--listen", &listen], &s.env());

    let ready = wait_for(Duration::from_secs(30), || readyz_is(port, 200)).await;
    assert!(ready.is_some(), "not ready with the broker up:\n{}", producer.log.lock().unwrap());
    {
        let _down = Stopped::kafka();
        let unready = wait_for(Duration::from_secs(20), || readyz_is(port, 503)).await;
        let why = unready
            .unwrap_or_else(|| panic!("still ready without a broker:\n{}", producer.log.lock().unwrap()));
        assert!(why.contains("no broker reachable"), "{why}");
    } // the broker starts again here
    let again = wait_for(Duration::from_secs(60), || readyz_is(port, 200)).await;
    assert!(again.is_some(), "not ready again after the broker came back:\n{}", producer.log.lock().unwrap());

    producer.signal("-TERM");
    let (code, log) = producer.finish(Duration::from_secs(90)).await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(logged_count(&log, "failed"), Some(0), "{log}");
}
