//! Fault 2: the consumer is SIGKILLed at several points mid-stream and restarted: no result is
//! lost and none is stored twice.

use std::time::Duration;

use crate::harness::{ONE_AT_A_TIME, Setup, rows, spawn, try_history};
use crate::support::{describe, sitemon, sites, wait_for};

#[tokio::test(flavor = "multi_thread")]
async fn killed_consumers_lose_and_duplicate_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    let n = 600;
    let cfg = s.preload(addr, n).await;

    for target in [100, 250, 400, 520] {
        let consumer = spawn(&["consumer", "-c", &cfg], &s.env());
        let reached =
            wait_for(Duration::from_secs(60), || async { try_history(&s.db).await.filter(|c| *c >= target) })
                .await;
        assert!(reached.is_some(), "consumer did not reach {target} rows:\n{}", consumer.log.lock().unwrap());
        consumer.signal("-KILL");
        let (code, _) = consumer.finish(Duration::from_secs(10)).await;
        assert_eq!(code, None, "killed by a signal");
    }
    let out =
        sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &s.env(), Duration::from_secs(120))
            .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, n as i64, "lost results");
    assert_eq!(rows(&s.db, "SELECT count(DISTINCT check_id) FROM check_results").await, n as i64);
    assert_eq!(rows(&s.db, "SELECT count(*) FROM site_status").await, n as i64);
    assert_eq!(rows(&s.db, "SELECT count(*) FROM dead_letters").await, 0);
}
