//! `sitemon report` run as the binary: CSV (results, summary on stderr), JSON (one object) and
//! the text summary from the embedded SQLite store, JSON from PostgreSQL, an unknown site, and
//! arguments that exit 64.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::support::report_data::{A_RESULTS, seeded_pg, seeded_sqlite};
use crate::support::{describe, sitemon, write};

const LIMIT: Duration = Duration::from_secs(20);
const WINDOW: [&str; 4] = ["--from", "2026-01-31", "--to", "2026-02-02"];

async fn report(cfg: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["report", "-c", cfg, "--site", "a"];
    args.extend(extra);
    sitemon(&args, &[], LIMIT).await
}

/// The summary of site `a` over the two days: 25 checks (22 up), 4 MISSED apart, 88 %.
fn check_summary(v: &Value) {
    let s = &v["summary"];
    assert_eq!(
        (&s["checks"], &s["successes"], &s["failures"], &s["missed"], &s["uptime_pct"], &s["downtime_s"]),
        (
            &Value::from(25),
            &Value::from(22),
            &Value::from(3),
            &Value::from(4),
            &Value::from(88.0),
            &Value::from(300)
        ),
        "{v:#}"
    );
    let days: Vec<(&str, u64, u64, Option<f64>)> = v["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["day"].as_str().unwrap(),
                d["checks"].as_u64().unwrap(),
                d["missed"].as_u64().unwrap(),
                d["uptime_pct"].as_f64(),
            )
        })
        .collect();
    assert_eq!(days, [("2026-01-31", 4, 1, Some(50.0)), ("2026-02-01", 21, 3, Some(95.238))]);
    // Only the whole-site incident of 2026-02-01 overlaps the window.
    let incidents = v["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{v:#}");
    assert_eq!((&incidents[0]["region"], &incidents[0]["duration_s"]), (&Value::Null, &Value::from(300)));
}

#[tokio::test(flavor = "multi_thread")]
async fn report_exports_csv_json_and_text_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    seeded_sqlite(&db, Utc::now()).await;
    let cfg = write(dir.path(), "r.yaml", &format!("sqlite:\n  path: {}\n", db.display()));

    // CSV: a header, then every result of site `a` in order; the summary on stderr.
    let out = report(&cfg, &[&WINDOW[..], &["--format", "csv"]].concat()).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let mut csv = csv::Reader::from_reader(&out.stdout[..]);
    assert_eq!(csv.headers().unwrap().iter().next(), Some("check_id"));
    assert_eq!(csv.headers().unwrap().len(), 23);
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), A_RESULTS, "{}", describe(&out));
    assert!(rows.iter().all(|r| &r[1] == "a"), "only site a");
    assert_eq!((&rows[0][4], &rows[0][6], &rows[0][16]), ("2026-01-31T23:10:00+00:00", "SUCCESS", "5"));
    let count = |s: &str| rows.iter().filter(|r| &r[6] == s).count();
    // Four missed slots: three MISSED rows, one of them carrying the fourth.
    assert_eq!((count("SUCCESS"), count("FAILURE"), count("MISSED")), (22, 3, 3));
    let carried: Vec<_> =
        rows.iter().filter(|r| !r[22].is_empty()).map(|r| (&r[4], &r[21], &r[22])).collect();
    assert_eq!(carried, [("2026-02-01T00:45:30+00:00", "2026-02-01T00:30:30+00:00", "1")]);
    let mut times: Vec<&str> = rows.iter().map(|r| &r[4]).collect();
    let in_order = times.clone();
    times.sort();
    assert_eq!(in_order, times, "oldest first");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("total") && summary.contains("88.000%"), "{}", describe(&out));

    // JSON: one object.
    let out = report(&cfg, &[&WINDOW[..], &["--format", "json"]].concat()).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(
        (&v["site"], &v["from"], &v["to"]),
        (
            &Value::from("a"),
            &Value::from("2026-01-31T00:00:00+00:00"),
            &Value::from("2026-02-02T00:00:00+00:00")
        )
    );
    check_summary(&v);
    assert_eq!(v["results"].as_array().unwrap().len(), A_RESULTS);

    // An RFC 3339 window: the first ten minutes of 2026-02-01, `to` excluded.
    let out = report(
        &cfg,
        &["--from", "2026-02-01T00:00:00Z", "--to", "2026-02-01T01:10:00+01:00", "--format", "json"],
    )
    .await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    assert_eq!(v["summary"]["checks"], 10, "{v:#}");
    assert_eq!(v["results"].as_array().unwrap().len(), 10);

    // Text (the default): the summary table.
    let out = report(&cfg, &WINDOW).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2026-01-31") && text.contains("50.000%") && text.contains("95.238%"), "{text}");
    assert!(text.contains("downtime (incidents of the whole site): 5m"), "{text}");

    // An unknown site: an empty report, exit 0, and a note.
    let out = sitemon(&["report", "-c", &cfg, "--site", "nope", "--format", "json"], &[], LIMIT).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&v["summary"]["checks"], &v["summary"]["uptime_pct"]), (&Value::from(0), &Value::Null));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no results for site `nope`"),
        "{}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn report_reads_postgres_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let url = seeded_pg(Utc::now()).await;
    let cfg = write(dir.path(), "pg.yaml", &format!("postgres:\n  url: {url}\n"));
    let out = report(&cfg, &[&WINDOW[..], &["--format", "json"]].concat()).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    check_summary(&v);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), A_RESULTS);
    assert_eq!(
        (&results[0]["scheduled_at"], &results[0]["total_us"]),
        (&Value::from("2026-01-31T23:10:00+00:00"), &Value::from(5))
    );
}

#[tokio::test]
async fn report_arguments_that_make_no_window_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        write(dir.path(), "r.yaml", &format!("sqlite:\n  path: {}\n", dir.path().join("none.db").display()));
    let cases: [(&[&str], &str); 5] = [
        (&["--from", "2026-02-02", "--to", "2026-02-01"], "--from: must be before --to"),
        (&["--from", "2026-02-01", "--to", "2026-02-01"], "--from: must be before --to"),
        (&["--from", "yesterday"], "expected an RFC 3339 time"),
        (&["--format", "xml"], "xml"),
        (&["--to", "2026-13-01"], "expected an RFC 3339 time"),
    ];
    for (extra, says) in cases {
        let out = report(&cfg, extra).await;
        assert_eq!(out.status.code(), Some(64), "{extra:?}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{extra:?}: {}", describe(&out));
    }
    let out = sitemon(&["report", "-c", &cfg], &[], LIMIT).await;
    assert_eq!(out.status.code(), Some(64), "--site is required: {}", describe(&out));
    // A window of nothing is refused before any database is opened.
    assert!(!dir.path().join("none.db").exists());
}
