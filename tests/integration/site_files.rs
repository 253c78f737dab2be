//! `sites_file:` (CSV and YAML) through the binary: problems at file:line, exit 64 with nothing
//! started; a site list checked by `sitemon run`; and the commands that check no site
//! (`consumer`, `migrate`, `status`) taking configs without one.

use std::time::Duration;

use sqlx::{Connection, SqliteConnection};

use crate::support::{describe, fresh_database, kafka_bootstrap, sitemon, sites, unique, wait_for, write};

#[tokio::test]
async fn sites_file_problems_are_located_and_exit_64_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sites.csv",
        "name,url,interval,timeout,headers.Authorization\nok,http://127.0.0.1:1/,10s,1s,Bearer ${SITEMON_TEST_TOKEN}\nbad url,http://127.0.0.1:1/,10s,1s,\nslow,http://127.0.0.1:1/,5s,9s,\nok,http://127.0.0.1:2/,10s,1s,\n",
    );
    write(
        dir.path(),
        "sites.yaml",
        "- name: y1\n  url: http://127.0.0.1:1/\n- name: y2\n  url: gopher://127.0.0.1:1/\n  colour: red\n",
    );
    let token = [("SITEMON_TEST_TOKEN", "tok3n-s3cret")];
    let csv = write(
        dir.path(),
        "csv.yaml",
        &format!(
            "sites_file: sites.csv\nkafka: {{bootstrap_servers: '127.0.0.1:1'}}\nsqlite: {{path: {:?}}}\nretention: forever\n",
            dir.path().join("never.db")
        ),
    );
    for command in [&["config", "check", "-c", &csv][..], &["producer", "-c", &csv], &["run", "-c", &csv]] {
        let out = sitemon(command, &token, Duration::from_secs(20)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{command:?}: {}", describe(&out));
        for place in [
            "csv.yaml:4:1: retention: ",
            "sites.csv:3: sites_file[1].name: `bad url` is not a valid site name",
            "sites.csv:4: sites_file[2].timeout: timeout 9s is longer than the interval 5s",
        ] {
            assert!(err.contains(place), "{command:?} did not report `{place}`:\n{err}");
        }
        assert!(
            err.contains("sites.csv:5: sites_file[3].name: duplicate site name `ok`"),
            "{command:?}: {err}"
        );
        assert!(err.contains("4 problems"), "{command:?}: {err}");
        assert!(!err.contains("tok3n"), "a header value was echoed: {err}");
    }
    assert!(!dir.path().join("never.db").exists(), "`run` created its store before the config was valid");

    write(dir.path(), "fixed.csv", "name,url\nok,http://127.0.0.1:1/\nok,http://127.0.0.1:2/\n");
    let cfg = write(dir.path(), "dup.yaml", "sites_file: fixed.csv\n");
    let out = sitemon(&["config", "check", "-c", &cfg], &[], Duration::from_secs(20)).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("fixed.csv:3: sites_file[1].name: duplicate site name `ok`"),
        "{}",
        describe(&out)
    );

    let yaml = write(dir.path(), "yaml.yaml", "sites_file: sites.yaml\n");
    let out = sitemon(&["config", "check", "-c", &yaml], &[], Duration::from_secs(20)).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    for place in
        ["sites.yaml:5:3: sites_file[1].colour: unknown field", "sites.yaml:4:3: sites_file[1].url: "]
    {
        assert!(err.contains(place), "`{place}` not reported:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn run_checks_the_sites_of_a_csv_file_and_config_check_counts_them() {
    let addr = sites::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    write(
        dir.path(),
        "fleet.csv",
        &format!(
            "name,url,interval,timeout,expected_status\nfrom-csv-ok,http://{addr}/ok,1s,500ms,\nfrom-csv-error,http://{addr}/error,1s,500ms,500|503\n"
        ),
    );
    let cfg = write(
        dir.path(),
        "run.yaml",
        &format!(
            "sites:\n  - {{name: inline, url: 'http://{addr}/ok', interval: 1s, timeout: 500ms}}\nsites_file: fleet.csv\nsqlite: {{path: {}}}\nconsumer: {{batch_wait: 100ms}}\n",
            db.display()
        ),
    );
    let out = sitemon(&["config", "check", "-c", &cfg], &[], Duration::from_secs(20)).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (3 sites"), "{}", describe(&out));

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"))
        .args(["run", "--no-table", "--watch", "-c", &cfg, "--grace", "3s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("sqlite://{}", db.display());
    // Each site's latest status is SUCCESS at some point (polled: a check slowed past its timeout
    // on a loaded machine is followed by the next one a second later); `from-csv-error` only
    // through the CSV's `expected_status` of `500|503`.
    let expect = [("from-csv-error", "SUCCESS"), ("from-csv-ok", "SUCCESS"), ("inline", "SUCCESS")];
    let last = std::sync::Mutex::new(Vec::new());
    let latest = wait_for(Duration::from_secs(30), || async {
        let mut c = SqliteConnection::connect(&url).await.ok()?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT site_id, status FROM site_status ORDER BY site_id")
                .fetch_all(&mut c)
                .await
                .ok()?;
        let got: Vec<(&str, &str)> = rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let done = got == expect;
        *last.lock().unwrap() = rows;
        done.then_some(())
    })
    .await;
    if latest.is_none() {
        let _ = child.start_kill();
        panic!("latest statuses did not all become SUCCESS within 30 s: {:?}", last.lock().unwrap());
    }

    // `--watch` follows the sites file: a row added to it is a site checked without a restart.
    let mut csv = std::fs::OpenOptions::new().append(true).open(dir.path().join("fleet.csv")).unwrap();
    std::io::Write::write_all(&mut csv, format!("added-later,http://{addr}/ok,1s,500ms,\n").as_bytes())
        .unwrap();
    drop(csv);
    let added = wait_for(Duration::from_secs(30), || async {
        let mut c = SqliteConnection::connect(&url).await.ok()?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM check_results WHERE site_id = 'added-later'")
            .fetch_one(&mut c)
            .await
            .ok()?;
        (n > 0).then_some(n)
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    assert!(added.is_some(), "a site added to the watched sites file was not checked within 30 s");
}

/// `consumer`, `migrate` and `status` take a config with no site at all, and never read a
/// `sites_file` (here one that does not exist); the producer's config needs no database.
#[tokio::test(flavor = "multi_thread")]
async fn commands_that_check_no_site_need_no_site_list() {
    let addr = sites::start().await;
    let db = fresh_database().await;
    let topic = unique("nosites");
    let dir = tempfile::tempdir().unwrap();
    let store_only = write(dir.path(), "store.yaml", &format!("postgres:\n  url: '{db}'\n"));
    let out = sitemon(&["migrate", "-c", &store_only], &[], Duration::from_secs(60)).await;
    assert_eq!(out.status.code(), Some(0), "migrate: {}", describe(&out));
    let out = sitemon(&["status", "-c", &store_only, "--json"], &[], Duration::from_secs(30)).await;
    assert_eq!(out.status.code(), Some(0), "status: {}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "{}", describe(&out));

    let producer = write(
        dir.path(),
        "producer.yaml",
        &format!(
            "sites:\n  - {{name: split, url: 'http://{addr}/ok'}}\nkafka:\n  bootstrap_servers: '{}'\n  topic: {topic}\n",
            kafka_bootstrap()
        ),
    );
    let out = sitemon(&["producer", "--once", "-c", &producer], &[], Duration::from_secs(60)).await;
    assert_eq!(out.status.code(), Some(0), "producer: {}", describe(&out));
    let consumer = write(
        dir.path(),
        "consumer.yaml",
        &format!(
            "sites_file: /nonexistent/million.csv\nkafka:\n  bootstrap_servers: '{}'\n  topic: {topic}\n  group_id: {}\npostgres:\n  url: '{db}'\nconsumer: {{batch_wait: 100ms}}\n",
            kafka_bootstrap(),
            unique("g")
        ),
    );
    let out =
        sitemon(&["consumer", "-c", &consumer, "--exit-when-idle", "3s"], &[], Duration::from_secs(90)).await;
    assert_eq!(out.status.code(), Some(0), "consumer: {}", describe(&out));
    let stored: Vec<(String,)> = sqlx::query_as("SELECT site_id FROM check_results")
        .fetch_all(&mut crate::support::connect(&db).await)
        .await
        .unwrap();
    assert_eq!(stored, [("split".to_owned(),)], "the producer's result, stored by a consumer without sites");

    // The commands that check sites say what they miss.
    for command in ["producer", "run"] {
        let out = sitemon(&[command, "-c", &store_only], &[], Duration::from_secs(20)).await;
        assert_eq!(out.status.code(), Some(64), "{command}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("sites: missing"),
            "{command}: {}",
            describe(&out)
        );
    }
}
