//! Site-list reloads through the binary: `sitemon run` reading its config again on SIGHUP and
//! with `--watch`, keeping its list when the new one has problems.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{Connection, SqliteConnection};

use crate::support::{sites as test_sites, wait_for, write};

/// `sitemon run` with its stderr collected as it comes.
struct Process {
    child: tokio::process::Child,
    log: Arc<Mutex<String>>,
}

impl Process {
    fn start(args: &[&str]) -> Process {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"))
            .args(args)
            // The log lines waited for are plain info lines, whatever the caller's shell says.
            .env("RUST_LOG", "info")
            .env_remove("SITEMON_LOG_FORMAT")
            .env_remove("SITEMON_LISTEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Process { child, log }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("still running").to_string();
        assert!(std::process::Command::new("kill").args([name, &pid]).status().unwrap().success());
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn wait_log(&self, parts: &[&str], limit: Duration) {
        let found =
            wait_for(limit, || async { parts.iter().all(|p| self.log().contains(p)).then_some(()) }).await;
        assert!(found.is_some(), "log lines with {parts:?} within {limit:?}:\n{}", self.log());
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then the exit code.
    async fn stop(mut self) -> Option<i32> {
        self.signal("-TERM");
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await.unwrap().unwrap();
        status.code()
    }
}

/// Rows stored per site.
async fn stored(db: &std::path::Path) -> HashMap<String, i64> {
    let url = format!("sqlite://{}", db.display());
    let Ok(mut c) = SqliteConnection::connect(&url).await else { return HashMap::new() };
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT site_id, count(*) FROM check_results GROUP BY site_id")
            .fetch_all(&mut c)
            .await
            .unwrap_or_default();
    rows.into_iter().collect()
}

/// Polls until every site in `want` has at least that many rows stored.
async fn wait_stored(
    db: &std::path::Path,
    want: &[(&str, i64)],
    limit: Duration,
    p: &Process,
) -> HashMap<String, i64> {
    let got = wait_for(limit, || async {
        let counts = stored(db).await;
        want.iter().all(|(id, n)| counts.get(*id).is_some_and(|c| c >= n)).then_some(counts)
    })
    .await;
    match got {
        Some(counts) => counts,
        None => panic!("{want:?} not stored within {limit:?}: {:?}\n{}", stored(db).await, p.log()),
    }
}

/// A `sitemon run` config storing in `db`, with these site items.
fn embedded_config(db: &std::path::Path, items: &str) -> String {
    format!(
        "region: embedded\nsqlite:\n  path: {}\nconsumer:\n  batch_wait: 100ms\nsites:\n{items}",
        db.display()
    )
}

fn site(name: &str, url: &str, extra: &str) -> String {
    format!("  - {{name: {name}, url: '{url}', interval: 1s, timeout: 500ms{extra}}}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_site_list_of_sitemon_run_and_a_bad_config_changes_nothing() {
    let addr = test_sites::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("run.db");
    let config = |items: &str| embedded_config(&db, items);
    let first = site("first", &format!("http://{addr}/ok"), "");
    let second = site("second", &format!("http://{addr}/ok?second"), "");
    let cfg = write(dir.path(), "run.yaml", &config(&first));
    let mut run = Process::start(&["run", "-c", &cfg, "--grace", "3s", "--no-table"]);
    let limit = Duration::from_secs(30);
    wait_stored(&db, &[("first", 1)], limit, &run).await;

    // Added: the second site is checked and stored after SIGHUP.
    write(dir.path(), "run.yaml", &config(&format!("{first}{second}")));
    run.signal("-HUP");
    wait_stored(&db, &[("first", 2), ("second", 1)], limit, &run).await;
    run.wait_log(&["site list reloaded", "added=1"], limit).await;

    // A config with a problem (line 9: the third site): reported with its place, nothing changes.
    let third = site("third", &format!("http://{addr}/ok?third"), ", pattern: '('");
    write(dir.path(), "run.yaml", &config(&format!("{first}{second}{third}")));
    run.signal("-HUP");
    run.wait_log(&[&format!("{cfg}:9:"), "sites[2].pattern", "invalid regex", "config reload failed"], limit)
        .await;
    let before = stored(&db).await;
    wait_stored(&db, &[("first", before["first"] + 2), ("second", before["second"] + 2)], limit, &run).await;
    assert!(run.alive(), "sitemon run ended after a bad config:\n{}", run.log());

    // A CA file that cannot be used fails the reload too, instead of every check of the site.
    let ca = write(dir.path(), "ca.pem", "not a certificate\n");
    let third = site("third", &format!("https://{addr}/"), &format!(", tls_ca_file: '{ca}'"));
    write(dir.path(), "run.yaml", &config(&format!("{first}{second}{third}")));
    run.signal("-HUP");
    run.wait_log(&[&format!("{cfg}:9:"), "sites[2].tls_ca_file", "is not a PEM certificate"], limit).await;
    let before = stored(&db).await;
    wait_stored(&db, &[("first", before["first"] + 2), ("second", before["second"] + 2)], limit, &run).await;
    assert!(run.alive(), "sitemon run ended after a bad CA file:\n{}", run.log());
    assert!(!stored(&db).await.contains_key("third"), "a site of a failed reload was checked");
    let log = run.log();
    assert_eq!(log.matches("config reload failed").count(), 2, "{log}");
    let code = run.stop().await;
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_reloads_the_site_list_when_the_config_file_changes() {
    let addr = test_sites::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("watch.db");
    let config = |items: &str| embedded_config(&db, items);
    let first = site("first", &format!("http://{addr}/ok"), "");
    let second = site("second", &format!("http://{addr}/ok?second"), "");
    let cfg = write(dir.path(), "watch.yaml", &config(&first));
    let run = Process::start(&["run", "-c", &cfg, "--grace", "3s", "--no-table", "--watch"]);
    let limit = Duration::from_secs(30);
    wait_stored(&db, &[("first", 1)], limit, &run).await;

    // No signal: the change of the file is enough.
    write(dir.path(), "watch.yaml", &config(&format!("{first}{second}")));
    wait_stored(&db, &[("second", 1)], limit, &run).await;

    // Removed: first stops (after at most the check under way at the reload).
    write(dir.path(), "watch.yaml", &config(&second));
    run.wait_log(&["removed=1"], limit).await;
    // By then what first's last check gave is stored; from then on nothing more comes.
    let settled = stored(&db).await;
    let settled = wait_stored(&db, &[("second", settled["second"] + 3)], limit, &run).await;
    let after = wait_stored(&db, &[("second", settled["second"] + 3)], limit, &run).await;
    assert_eq!(after["first"], settled["first"], "first is still checked after its removal");
    let log = run.log();
    assert!(!log.contains("SIGHUP"), "{log}");
    let code = run.stop().await;
    assert_eq!(code, Some(0), "{log}");
}
