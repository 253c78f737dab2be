//! `sitemon run` sends alerts from its own SQLite file (no Kafka, no PostgreSQL): outages,
//! slowness and expiring certificates reach a local webhook, silences added with `sitemon
//! silence` on the file hold a site back, and `sitemon status` shows the last alert.

use std::time::Duration;

use crate::receiver::Receiver;
use crate::support::{describe, sitemon};

/// A `sitemon run` config in `dir`: SQLite at `run.db`, these `sites:` items (YAML flow
/// mappings), and one route to the receiver's `/hook`. Returns the config path and the file.
fn run_config(dir: &std::path::Path, sites: &[String], rx: &Receiver) -> (String, std::path::PathBuf) {
    let db = dir.join("run.db");
    let items: String = sites.iter().map(|s| format!("  - {s}\n")).collect();
    let cfg = crate::support::write(
        dir,
        "run.yaml",
        &format!(
            "region: local\nsqlite:\n  path: {}\nsites:\n{items}\
             notify:\n  providers:\n    hook: {{type: webhook, url: '{}'}}\n  routes:\n    - {{name: all, providers: [hook]}}\n",
            db.display(),
            rx.url("/hook")
        ),
    );
    (cfg, db)
}

/// `sitemon run` (no Kafka, no PostgreSQL) with a `notify` section: a site that answers 500
/// opens an incident, and the webhook hears of it from the SQLite file's deliveries.
#[tokio::test(flavor = "multi_thread")]
async fn sitemon_run_sends_alerts_from_its_own_file() {
    let rx = Receiver::start().await;
    let site = crate::support::sites::start().await;
    // A certificate that expires in five days, trusted through the site's CA file.
    let pki = crate::support::tls::Pki::new();
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    let https = crate::support::tls::serve(&pki.expiring_in(5), OK).await;
    let dir = tempfile::tempdir().unwrap();
    let sites = [
        format!("{{name: broken, url: 'http://{site}/error', interval: 1s, timeout: 500ms, down_after: 2}}"),
        format!(
            "{{name: sluggish, url: 'http://{site}/pause', interval: 1s, timeout: 900ms, down_after: 2, degraded_above: 100ms}}"
        ),
        format!(
            "{{name: renewing, url: 'https://{https}/', interval: 1s, timeout: 900ms, tls_ca_file: '{}'}}",
            pki.ca_file.display()
        ),
    ];
    let (cfg, db) = run_config(dir.path(), &sites, &rx);
    let running = crate::harness::spawn(&["run", "-c", &cfg, "--no-table"], &[]);
    let opened = |site: &'static str| {
        let rx = rx.clone();
        move || {
            let rx = rx.clone();
            async move {
                rx.received("/hook").into_iter().find(|r| {
                    r.body["type"] == "incident.opened" && r.body["event"]["incident"]["site_id"] == site
                })
            }
        }
    };
    let heard = crate::support::wait_for(Duration::from_secs(60), opened("broken")).await;
    let slow = crate::support::wait_for(Duration::from_secs(30), opened("sluggish")).await;
    let cert = crate::support::wait_for(Duration::from_secs(30), opened("renewing")).await;
    running.signal("-TERM");
    let (code, log) = running.finish(Duration::from_secs(30)).await;
    let heard = heard.unwrap_or_else(|| panic!("no alert within 60 s:\n{log}"));
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(heard.body["event"]["incident"]["kind"], "DOWN");
    assert!(heard.body["title"].as_str().unwrap().starts_with("DOWN: broken"), "{:?}", heard.body);
    assert_eq!(
        heard.headers.get("idempotency-key"),
        heard.body["delivery_id"].as_str().map(str::to_owned).as_ref()
    );
    // Slowness and an expiring certificate are incidents of their own kinds, not outages.
    let slow = slow.unwrap_or_else(|| panic!("no DEGRADED alert:\n{log}"));
    assert_eq!(slow.body["event"]["incident"]["kind"], "DEGRADED");
    assert!(slow.body["title"].as_str().unwrap().starts_with("SLOW: sluggish"), "{:?}", slow.body);
    let cert = cert.unwrap_or_else(|| panic!("no CERT_EXPIRING alert:\n{log}"));
    assert_eq!(cert.body["event"]["incident"]["kind"], "CERT_EXPIRING");
    assert!(cert.body["text"].as_str().unwrap().contains("the certificate expires at"), "{:?}", cert.body);
    let down_alerts = rx
        .received("/hook")
        .into_iter()
        .filter(|r| r.body["event"]["incident"]["kind"] == "DOWN")
        .filter(|r| r.body["event"]["incident"]["site_id"] != "broken")
        .count();
    assert_eq!(down_alerts, 0, "the slow and the expiring site are up");
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let sent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notify_deliveries WHERE state = 'SENT' AND kind = 'incident.opened'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(sent >= 3, "recorded as sent in the file");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT DISTINCT incident_kind FROM incidents ORDER BY 1")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(kinds, ["CERT_EXPIRING", "DEGRADED", "DOWN"]);
}

/// `sitemon silence add` on a config without `postgres` writes the SQLite file `sitemon run`
/// uses; `sitemon run` holds back the silenced site's alerts (recorded as silenced) and sends
/// the others.
#[tokio::test(flavor = "multi_thread")]
async fn a_silence_holds_back_sitemon_runs_alerts_too() {
    let rx = Receiver::start().await;
    let site = crate::support::sites::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sites = ["broken", "quiet"].map(|name| {
        format!("{{name: {name}, url: 'http://{site}/error', interval: 1s, timeout: 500ms, down_after: 2}}")
    });
    let (cfg, db) = run_config(dir.path(), &sites, &rx);
    let add = ["silence", "add", "-c", &cfg, "--site", "quiet", "--for", "1h", "--reason", "works"];
    // No file yet: a silence in a new one would hold back nothing.
    let refused = sitemon(&add, &[], Duration::from_secs(60)).await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no database at"), "{}", describe(&refused));
    assert!(!db.exists(), "no file made");
    // The file as an earlier `sitemon run` left it.
    drop(sitemon::store::SqliteStore::open(&db).await.unwrap());
    let added = sitemon(&add, &[], Duration::from_secs(60)).await;
    assert!(added.status.success(), "{}", describe(&added));
    let list = sitemon(&["silence", "list", "-c", &cfg], &[], Duration::from_secs(60)).await;
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(text.contains("quiet") && text.contains("works"), "{}", describe(&list));
    let running = crate::harness::spawn(&["run", "-c", &cfg, "--no-table"], &[]);
    use sqlx::Connection;
    let url = format!("sqlite://{}", db.display());
    let held = crate::support::wait_for(Duration::from_secs(60), || {
        let url = url.clone();
        let rx = rx.clone();
        async move {
            let mut c = sqlx::SqliteConnection::connect(&url).await.ok()?;
            let silenced: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM notify_deliveries WHERE site_id = 'quiet' AND state = 'SILENCED' \
                 AND silenced_by = 'works'",
            )
            .fetch_one(&mut c)
            .await
            .ok()?;
            let sent =
                rx.received("/hook").iter().any(|r| r.body["event"]["incident"]["site_id"] == "broken");
            (silenced >= 1 && sent).then_some(())
        }
    })
    .await;
    running.signal("-TERM");
    let (code, log) = running.finish(Duration::from_secs(30)).await;
    assert!(held.is_some(), "quiet held back and broken sent within 60 s:\n{log}");
    assert_eq!(code, Some(0), "{log}");
    let quiet =
        rx.received("/hook").iter().filter(|r| r.body["event"]["incident"]["site_id"] == "quiet").count();
    assert_eq!(quiet, 0, "nothing sent about the silenced site");
    // `status` on the file shows the newest alert of each open incident.
    let status = sitemon(&["status", "-c", &cfg], &[], Duration::from_secs(60)).await;
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(text.contains("hook SENT") && text.contains("hook SILENCED"), "{}", describe(&status));
}
