//! `sitemon run` (one process, SQLite), `sitemon status` and `sitemon check` against local sites;
//! the producer's warning when the host name stands in for `region:`.

use std::time::Duration;

use sqlx::{Connection, SqliteConnection};

use crate::support::{describe, sitemon, sites, wait_for, write};

#[tokio::test(flavor = "multi_thread")]
async fn run_stores_checks_in_sqlite_and_stops_cleanly_on_sigterm() {
    let addr = sites::start().await;
    let closed_guard = sites::closed_port();
    let closed = closed_guard.port;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let cfg = write(
        dir.path(),
        "run.yaml",
        &format!(
            "region: embedded\nsites:\n  - {{name: ok, url: 'http://{addr}/ok', interval: 1s, timeout: 500ms, pattern: operational}}\n  - {{name: error, url: 'http://{addr}/error', interval: 1s, timeout: 500ms}}\n  - {{name: closed, url: 'http://127.0.0.1:{closed}/', interval: 1s, timeout: 500ms}}\nsqlite:\n  path: {}\nconsumer:\n  batch_wait: 100ms\n",
            db.display()
        ),
    );
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"))
        .args(["run", "-c", &cfg, "--grace", "3s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Poll until every site has at least two checks stored.
    let url = format!("sqlite://{}", db.display());
    let counts = wait_for(Duration::from_secs(30), || async {
        let mut c = SqliteConnection::connect(&url).await.ok()?;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT site_id, count(*) FROM check_results GROUP BY site_id ORDER BY site_id")
                .fetch_all(&mut c)
                .await
                .ok()?;
        (rows.len() == 3 && rows.iter().all(|(_, n)| *n >= 2)).then_some(rows)
    })
    .await;
    assert!(counts.is_some(), "sitemon run did not store two checks per site within 30 s");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let signalled = tokio::time::Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let took = signalled.elapsed();
    assert!(took <= Duration::from_secs(5), "stopped {took:?} after SIGTERM with --grace 3s");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("site=ok") && log.contains("CONNECT"), "plain log lines off a terminal:\n{log}");

    let mut c = SqliteConnection::connect(&url).await.unwrap();
    let latest: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT site_id, status, failure_kind, consecutive_failures FROM site_status ORDER BY site_id",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(latest.len(), 3);
    assert_eq!(
        (latest[0].0.as_str(), latest[0].1.as_str(), latest[0].2.as_deref()),
        ("closed", "FAILURE", Some("CONNECT"))
    );
    assert!(latest[0].3 >= 2, "consecutive failures accumulate: {latest:?}");
    assert_eq!((latest[1].0.as_str(), latest[1].2.as_deref()), ("error", Some("UNEXPECTED_STATUS")));
    assert_eq!((latest[2].0.as_str(), latest[2].1.as_str(), latest[2].3), ("ok", "SUCCESS", 0));
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM check_results").fetch_one(&mut c).await.unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT check_id) FROM check_results")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(total, distinct, "one row per check");

    // `sitemon status` reads the same store.
    let out = sitemon(&["status", "-c", &cfg], &[], Duration::from_secs(20)).await;
    assert!(out.status.success(), "{}", describe(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    // The summary first, then the rows, problems first.
    assert!(lines[0].starts_with("3 sites in 1 region: 1 up, 2 down, 0 stale"), "{table}");
    let rows: Vec<&str> = lines.iter().copied().skip_while(|l| !l.starts_with("SITE")).skip(1).collect();
    assert!(rows[0].contains("DOWN") && rows[1].contains("DOWN"), "{table}");
    assert!(rows.iter().any(|l| l.starts_with("closed") && l.contains("DOWN")), "{table}");
    assert!(rows[2].starts_with("ok") && rows[2].contains("UP") && rows[2].contains("200"), "{table}");
    let out = sitemon(&["status", "-c", &cfg, "--json"], &[], Duration::from_secs(20)).await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(3));
    assert_eq!(json[1]["failure_kind"], "UNEXPECTED_STATUS");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_prints_phases_and_exits_by_state() {
    let addr = sites::start().await;
    let limit = Duration::from_secs(20);

    let url = format!("http://{addr}/ok");
    let out = sitemon(&["check", &url, "--pattern", "operational"], &[], limit).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for part in ["UP", "status       200", "connect", "first byte", "total", "found"] {
        assert!(text.contains(part), "`{part}` missing:\n{text}");
    }

    let out = sitemon(&["check", &format!("http://{addr}/error"), "--json"], &[], limit).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status_code"], 500);
    assert_eq!(v["failure_kind"], "UNEXPECTED_STATUS");
    assert!(v["ttfb_us"].as_i64().is_some_and(|t| t > 0));

    let out = sitemon(&["check", &url, "--method", "HEAD", "--json"], &[], limit).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let out = sitemon(&["check", "ftp://nowhere/", "--pattern", "("], &[], limit).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("URL: scheme `ftp`") && err.contains("--pattern: invalid regex"), "{err}");
}

#[tokio::test]
async fn version_completions_and_config_check() {
    let limit = Duration::from_secs(20);
    let out = sitemon(&["--version"], &[], limit).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("sitemon {}", env!("CARGO_PKG_VERSION")));
    for shell in ["bash", "zsh", "fish"] {
        let out = sitemon(&["completions", shell], &[], limit).await;
        assert!(out.status.success(), "{}", describe(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("sitemon") && script.contains("producer"), "{shell} completions");
    }
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/example_config/standalone.yaml");
    let out = sitemon(&["config", "check", "-c", example], &[], limit).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (4 sites"), "{}", describe(&out));
}

#[tokio::test]
async fn a_producer_without_a_region_warns_that_its_host_name_labels_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let body = "kafka: {bootstrap_servers: '127.0.0.1:1'}\nsites:\n  - {name: a, url: 'http://127.0.0.1:1/', interval: 5s, timeout: 1s}\n";
    let warning = "no `region:` in the config: results are labelled with the host name";
    let env = [("RUST_LOG", "warn"), ("SITEMON_LOG_FORMAT", "plain")];
    for (region, warned) in [("", true), ("region: eu\n", false)] {
        let cfg = write(dir.path(), "c.yaml", &format!("{region}{body}"));
        // No broker: the one result is given up after `--grace`; the warning came at the start.
        let args = ["producer", "--once", "--grace", "1s", "-c", &cfg];
        let out = sitemon(&args, &env, Duration::from_secs(30)).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.contains(warning), warned, "{region:?}: {}", describe(&out));
    }
}
