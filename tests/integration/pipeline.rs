//! End to end: local sites → `sitemon producer --once` → real Kafka → `sitemon consumer` → real
//! PostgreSQL, then a second consumer group over the same topic stores no duplicate.

use std::time::Duration;

use sqlx::Row;
use tokio::io::AsyncBufReadExt;

use crate::support::{self, describe, sitemon, sites, tls, write};

/// site, status, status code, failure kind, consecutive failures
type StatusRow = (String, String, Option<i32>, Option<String>, i32);

const LIMIT: Duration = Duration::from_secs(120);

fn config(addr: std::net::SocketAddr, closed: u16, tls: (u16, &str), topic: &str, group: &str) -> String {
    let (tls_port, ca) = tls;
    format!(
        r#"region: test
sites:
  - {{name: ok, url: "http://{addr}/ok"}}
  - {{name: error, url: "http://{addr}/error"}}
  - {{name: slow, url: "http://{addr}/slow", timeout: 1s}}
  - {{name: match, url: "http://{addr}/ok", pattern: "systems? operational"}}
  - {{name: nomatch, url: "http://{addr}/ok", pattern: "^maintenance"}}
  - {{name: closed, url: "http://127.0.0.1:{closed}/"}}
  - {{name: tls, url: "https://localhost:{tls_port}/", tls_ca_file: "{ca}"}}
kafka:
  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}
  topic: {topic}
  group_id: {group}
postgres:
  url: ${{SITEMON_TEST_DATABASE_URL}}
consumer:
  batch_size: 4
  batch_wait: 200ms
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn checks_flow_from_sites_through_kafka_into_postgres_exactly_once() {
    let addr = sites::start().await;
    let closed_guard = sites::closed_port();
    let closed = closed_guard.port;
    let pki = tls::Pki::new();
    let https = tls::serve(&pki.valid(), b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure").await;
    let ca = pki.ca_file.display().to_string();
    let tls_site = (https.port(), ca.as_str());
    let db = support::fresh_database().await;
    let topic = support::unique("sitemon-e2e");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "sitemon.yaml", &config(addr, closed, tls_site, &topic, "group-a"));
    let cfg_b = write(dir.path(), "sitemon-b.yaml", &config(addr, closed, tls_site, &topic, "group-b"));
    let bootstrap = support::kafka_bootstrap();
    let env = [("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()), ("SITEMON_TEST_DATABASE_URL", db.as_str())];

    for _ in 0..2 {
        let out = sitemon(&["migrate", "-c", &cfg], &env, LIMIT).await;
        assert!(out.status.success(), "migrate: {}", describe(&out));
    }

    let out = sitemon(&["producer", "--once", "-c", &cfg], &env, LIMIT).await;
    assert!(out.status.success(), "producer: {}", describe(&out));

    let out = sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &env, LIMIT).await;
    assert!(out.status.success(), "consumer: {}", describe(&out));

    let mut conn = support::connect(&db).await;
    let history: Vec<(String, i64)> =
        sqlx::query_as("SELECT site_id, count(*) FROM check_results GROUP BY site_id ORDER BY site_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let expected_sites = ["closed", "error", "match", "nomatch", "ok", "slow", "tls"];
    assert_eq!(
        history,
        expected_sites.iter().map(|s| (s.to_string(), 1)).collect::<Vec<_>>(),
        "one history row per check"
    );

    let rows = sqlx::query(
        "SELECT site_id, status, status_code, failure_kind, consecutive_failures, region
         FROM site_status ORDER BY site_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let got: Vec<StatusRow> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.get::<String, _>("region"), "test");
            (
                r.get("site_id"),
                r.get("status"),
                r.get("status_code"),
                r.get("failure_kind"),
                r.get("consecutive_failures"),
            )
        })
        .collect();
    let want = vec![
        ("closed", "FAILURE", None, Some("CONNECT"), 1),
        ("error", "FAILURE", Some(500), Some("UNEXPECTED_STATUS"), 1),
        ("match", "SUCCESS", Some(200), None, 0),
        ("nomatch", "FAILURE", Some(200), Some("PATTERN_NOT_FOUND"), 1),
        ("ok", "SUCCESS", Some(200), None, 0),
        ("slow", "FAILURE", None, Some("TIMEOUT"), 1),
        ("tls", "SUCCESS", Some(200), None, 0),
    ];
    let want: Vec<_> = want
        .into_iter()
        .map(|(s, st, c, k, n)| (s.to_owned(), st.to_owned(), c, k.map(str::to_owned), n))
        .collect();
    assert_eq!(got, want);

    // Timings and identity arrive intact: the closed port never got past connect, the others did.
    let timing = sqlx::query(
        "SELECT site_id, connect_us, ttfb_us, total_us, body_bytes, pattern_matched, tls_not_after, tls_us, dns_us,
                started_at >= scheduled_at AS ordered
         FROM check_results ORDER BY site_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for r in &timing {
        let site: String = r.get("site_id");
        assert!(r.get::<bool, _>("ordered"), "{site}: started before scheduled");
        assert!(r.get::<Option<i64>, _>("total_us").is_some_and(|t| t > 0), "{site}: total time");
        let ttfb: Option<i64> = r.get("ttfb_us");
        match site.as_str() {
            "closed" | "slow" => assert!(ttfb.is_none(), "{site}: no response, no ttfb"),
            _ => assert!(ttfb.is_some_and(|t| t > 0), "{site}: ttfb"),
        }
        if site == "tls" {
            let expiry: Option<chrono::DateTime<chrono::Utc>> = r.get("tls_not_after");
            assert_eq!(expiry.map(|t| t.to_rfc3339()).as_deref(), Some("2099-01-01T00:00:00+00:00"));
            assert!(r.get::<Option<i64>, _>("tls_us").is_some_and(|t| t > 0), "tls handshake time");
            assert!(r.get::<Option<i64>, _>("dns_us").is_some(), "localhost was resolved");
        }
        if site == "match" {
            assert_eq!(r.get::<Option<bool>, _>("pattern_matched"), Some(true));
            assert_eq!(r.get::<Option<i64>, _>("body_bytes"), Some(sites::OK_BODY.len() as i64));
        }
    }

    // The operator view: uptime and latency percentiles per site and hour.
    let hourly: Vec<(String, i64, f64, f64)> = sqlx::query_as(
        "SELECT site_id, checks, uptime_pct::float8, p95_total_us FROM site_hourly WHERE site_id IN ('ok', 'error') ORDER BY site_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(hourly.len(), 2, "{hourly:?}");
    assert_eq!((hourly[0].0.as_str(), hourly[0].1, hourly[0].2), ("error", 1, 0.0));
    assert_eq!((hourly[1].0.as_str(), hourly[1].1, hourly[1].2), ("ok", 1, 100.0));
    assert!(hourly[1].3 > 0.0);

    // `sitemon status` reads the same rows back from PostgreSQL.
    let out = sitemon(&["status", "-c", &cfg, "--json"], &env, LIMIT).await;
    assert!(out.status.success(), "status: {}", describe(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<(&str, &str)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["site_id"].as_str().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("closed", "DOWN"),
            ("error", "DOWN"),
            ("match", "UP"),
            ("nomatch", "DOWN"),
            ("ok", "UP"),
            ("slow", "DOWN"),
            ("tls", "UP")
        ]
    );

    // A second consumer group re-reads the whole topic: nothing new may be stored.
    let out = sitemon(&["consumer", "-c", &cfg_b, "--exit-when-idle", "3s"], &env, LIMIT).await;
    assert!(out.status.success(), "second consumer: {}", describe(&out));
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM check_results").fetch_one(&mut conn).await.unwrap();
    assert_eq!(total, 7, "re-consuming the topic must not duplicate history");
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters").fetch_one(&mut conn).await.unwrap();
    assert_eq!(dead, 0);
    let latest: i64 =
        sqlx::query_scalar("SELECT count(*) FROM site_status").fetch_one(&mut conn).await.unwrap();
    assert_eq!(latest, 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_started_before_the_topic_exists_waits_for_it() {
    let addr = sites::start().await;
    let db = support::fresh_database().await;
    let topic = support::unique("sitemon-early");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "early.yaml",
        &format!(
            "sites:\n  - {{name: ok, url: 'http://{addr}/ok'}}\nkafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {topic}\npostgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_wait: 200ms\n"
        ),
    );
    let bootstrap = support::kafka_bootstrap();
    let mut consumer = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"))
        .args(["consumer", "-c", &cfg])
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .env("SITEMON_TEST_DATABASE_URL", &db)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut lines = tokio::io::BufReader::new(consumer.stderr.take().unwrap()).lines();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().unwrap().push_str(&(l + "\n"));
        }
    });
    let env = [("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()), ("SITEMON_TEST_DATABASE_URL", db.as_str())];
    // The consumer subscribes to a topic nobody has written yet: it must say so and wait.
    let waiting = support::wait_for(Duration::from_secs(30), || async {
        log.lock().unwrap().contains("Unknown topic or partition").then_some(())
    })
    .await;
    assert!(waiting.is_some(), "consumer never noticed the missing topic:\n{}", log.lock().unwrap());
    assert!(consumer.try_wait().unwrap().is_none(), "consumer exited while the topic did not exist");
    let out = sitemon(&["producer", "--once", "-c", &cfg], &env, LIMIT).await;
    assert!(out.status.success(), "producer: {}", describe(&out));
    let stored = support::wait_for(Duration::from_secs(60), || async {
        let mut c = support::connect(&db).await;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM check_results").fetch_one(&mut c).await.ok()?;
        (n == 1).then_some(n)
    })
    .await;
    assert!(stored.is_some(), "the result published after the consumer started was not stored");
    let pid = consumer.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(20), consumer.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
}
