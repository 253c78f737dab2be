//! Fault 3: PostgreSQL stops for about ten seconds while results keep arriving. The consumer
//! reports not ready, keeps its offsets, and stores everything once the database is back.

use std::time::Duration;

use crate::harness::{ONE_AT_A_TIME, Setup, Stopped, rows, spawn, try_history};
use crate::support::{sites, wait_for};

async fn readyz(port: u16) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_waits_out_a_database_outage() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let addr = sites::start().await;
    let s = Setup::new().await;
    let n: i64 = 300;
    let cfg = s.preload(addr, n as usize).await;
    let port = sites::closed_port().port; // free now; the consumer binds it
    let listen = format!("127.0.0.1:{port}");
    let consumer = spawn(&["consumer", "-c", &cfg, "--listen", &listen], &s.env());

    let first =
        wait_for(Duration::from_secs(60), || async { try_history(&s.db).await.filter(|c| *c >= n) }).await;
    assert!(first.is_some(), "consumer did not store the first round:\n{}", consumer.log.lock().unwrap());
    let ready =
        wait_for(Duration::from_secs(10), || async { readyz(port).await.filter(|c| *c == 200) }).await;
    assert!(ready.is_some(), "ready while the database works");
    {
        let _down = Stopped::postgres();
        // Results keep coming while the database is away (the producer needs no database).
        s.preload(addr, n as usize).await;
        let unready =
            wait_for(Duration::from_secs(40), || async { readyz(port).await.filter(|c| *c == 503) }).await;
        assert!(unready.is_some(), "readiness did not report the outage:\n{}", consumer.log.lock().unwrap());
        // The fault under test: the database stays down a while longer.
        tokio::time::sleep(Duration::from_secs(5)).await;
    } // PostgreSQL starts again here
    let all =
        wait_for(Duration::from_secs(90), || async { try_history(&s.db).await.filter(|c| *c >= 2 * n) })
            .await;
    assert!(all.is_some(), "consumer did not resume:\n{}", consumer.log.lock().unwrap());
    let ready =
        wait_for(Duration::from_secs(30), || async { readyz(port).await.filter(|c| *c == 200) }).await;
    assert!(ready.is_some(), "readiness did not recover");

    consumer.signal("-TERM");
    let (code, log) = consumer.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("storing the batch failed; offsets stay put"), "the outage was noticed:\n{log}");
    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, 2 * n);
    assert_eq!(rows(&s.db, "SELECT count(DISTINCT check_id) FROM check_results").await, 2 * n);
}
