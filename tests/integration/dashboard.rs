//! The Grafana dashboard (`grafana/sitemon-dashboard.json`): every query it holds — panels and
//! template variables — reads only the report views, and runs on the test PostgreSQL database
//! with Grafana's macros and the `site` variable filled in, returning rows.

use crate::support::report_data::seeded_pg;
use chrono::{Duration, Utc};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../grafana/sitemon-dashboard.json");

/// The views a query may read, and the tables it must not.
const VIEWS: [&str; 5] =
    ["site_daily", "site_monthly", "site_latency_hourly", "incident_report", "site_latest"];
const TABLES: [&str; 6] =
    ["check_results", "site_status", "incidents", "site_tracks", "incident_events", "dead_letters"];

/// Every `rawSql` in the dashboard (panels, nested rows, targets) and every query variable's
/// query, with where it was found.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("rawSql", Value::String(sql)) => out.push((at.to_owned(), sql.clone())),
                        _ => walk(v, &format!("{at}.{k}"), out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{at}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], "panels", &mut out);
    for var in dashboard["templating"]["list"].as_array().expect("templating.list") {
        if var["type"] == "query" {
            let sql =
                var["query"].as_str().or(var["query"]["rawSql"].as_str()).expect("a query variable's SQL");
            out.push((format!("variable {}", var["name"]), sql.to_owned()));
        }
    }
    out
}

/// Whether `sql` names `word` as a whole identifier.
fn names(sql: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    sql.match_indices(word).any(|(i, _)| {
        let before = sql[..i].chars().next_back().is_none_or(|c| !ident(c));
        let after = sql[i + word.len()..].chars().next().is_none_or(|c| !ident(c));
        before && after
    })
}

/// Grafana's PostgreSQL macros and the dashboard's variable, as Grafana expands them.
fn expand(sql: &str, from: &str, to: &str, site: &str) -> String {
    let mut s = sql.to_owned();
    while let Some(i) = s.find("$__timeFilter(") {
        let end = i + s[i..].find(')').expect("macro closes");
        let column = s[i + "$__timeFilter(".len()..end].trim().to_owned();
        s.replace_range(i..=end, &format!("{column} BETWEEN '{from}' AND '{to}'"));
    }
    s.replace("$__timeFrom()", &format!("'{from}'"))
        .replace("$__timeTo()", &format!("'{to}'"))
        .replace("${site}", site)
        .replace("$site", site)
}

#[test]
fn every_dashboard_query_reads_only_the_views() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let queries = queries(&dashboard);
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 5, "uptime per day, SLA per month, latency, incidents, latest status");
    assert_eq!(queries.len(), panels.len() + 1, "one query per panel and the site variable: {queries:#?}");
    for (at, sql) in &queries {
        for table in TABLES {
            assert!(!names(sql, table), "{at} reads the table {table}:\n{sql}");
        }
        assert!(VIEWS.iter().any(|v| names(sql, v)), "{at} reads none of the views:\n{sql}");
    }
    for view in VIEWS {
        assert!(queries.iter().any(|(_, sql)| names(sql, view)), "no panel shows {view}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_runs_on_postgres_and_returns_rows() {
    let now = Utc::now();
    let url = seeded_pg(now).await;
    let mut c = crate::support::connect(&url).await;
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let from = "2026-01-01T00:00:00Z";
    let to = (now + Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for (at, sql) in queries(&dashboard) {
        let sql = expand(&sql, from, &to, "a");
        assert!(!sql.contains('$'), "{at}: a macro or variable the test does not expand:\n{sql}");
        let rows = sqlx::raw_sql(&sql).fetch_all(&mut c).await.unwrap_or_else(|e| panic!("{at}: {e}\n{sql}"));
        assert!(!rows.is_empty(), "{at} returned no rows:\n{sql}");
    }
}
