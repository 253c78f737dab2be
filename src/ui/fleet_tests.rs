//! `status` for a fleet: the summary per region, the filters, the order and the cap.

use chrono::{DateTime, TimeZone, Utc};

use super::fleet::{Query, Sort, State};
use super::table::Overview;
use super::{status_json, status_table};
use crate::domain::{CheckStatus, FailureKind, Incident, IncidentKind, SiteStatus};
use crate::notify::Pattern;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

/// A row of `site` in `region`, in its state since `since` and last checked at 1000 s.
fn row(site: &str, region: &str, status: CheckStatus, since: i64, interval_ms: i64) -> SiteStatus {
    SiteStatus {
        site_id: site.into(),
        region: region.into(),
        url: "http://x/".into(),
        status,
        failure_kind: (status == CheckStatus::Failure).then_some(FailureKind::Timeout),
        error: None,
        status_code: (status == CheckStatus::Success).then_some(200),
        total_us: Some(1_000),
        consecutive_failures: 0,
        status_since: at(since),
        scheduled_at: at(1_000),
        interval_ms: Some(interval_ms),
    }
}

fn degraded(site: &str) -> Incident {
    Incident {
        incident_id: Incident::kind_id_for(site, IncidentKind::Degraded, at(900)),
        kind: IncidentKind::Degraded,
        site_id: site.into(),
        region: None,
        url: "http://x/".into(),
        started_at: at(900),
        confirmed_at: at(900),
        ended_at: None,
        end_reason: None,
        regions: Vec::new(),
        failure_kind: None,
        error: None,
        failed_checks: 0,
    }
}

/// Six sites in two regions: down, stale, degraded and up ones, in their states since different
/// moments. Seen at 1010 s, where a 1 s interval is stale.
fn fleet() -> Overview {
    let sites = vec![
        row("api", "eu", CheckStatus::Success, 500, 60_000),
        row("api", "us", CheckStatus::Failure, 950, 60_000),
        row("blog", "eu", CheckStatus::Success, 100, 1_000),
        row("shop-1", "eu", CheckStatus::Failure, 800, 60_000),
        row("shop-2", "eu", CheckStatus::Success, 990, 60_000),
        row("shop-2", "us", CheckStatus::Success, 980, 60_000),
    ];
    Overview { sites, incidents: vec![degraded("shop-2")], alerts: Vec::new() }
}

fn sites_of(t: &str) -> Vec<String> {
    t.lines()
        .skip_while(|l| !l.starts_with("SITE "))
        .skip(1)
        .take_while(|l| !l.is_empty() && !l.starts_with('('))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join("/"))
        .collect()
}

#[test]
fn the_table_leads_with_a_summary_per_region() {
    let t = status_table(&fleet(), &Query::default(), at(1_010));
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[0], "4 sites in 2 regions: 1 up, 2 down, 1 stale, 2 degraded (a row per site and region)",
        "{t}"
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["REGION", "UP", "DOWN", "STALE", "DEGRADED"]
    );
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["eu", "1", "1", "1", "1"], "{t}");
    assert_eq!(lines[3].split_whitespace().collect::<Vec<_>>(), ["us", "0", "1", "0", "1"], "{t}");
    // Problems first (down, stale, degraded, up), each longest in its state first.
    assert_eq!(sites_of(&t), ["shop-1/eu", "api/us", "blog/eu", "shop-2/us", "shop-2/eu", "api/eu"], "{t}");
    assert!(t.lines().any(|l| l.split_whitespace().take(3).eq(["shop-2", "eu", "DEGRADED"])), "{t}");
}

#[test]
fn filters_narrow_the_rows_and_the_json() {
    let o = fleet();
    let q = Query { states: vec![State::Down, State::Stale], ..Query::default() };
    assert_eq!(sites_of(&status_table(&o, &q, at(1_010))), ["shop-1/eu", "api/us", "blog/eu"]);
    let q = Query {
        sites: vec![Pattern::new("shop-*").unwrap()],
        regions: vec!["eu".into()],
        ..Query::default()
    };
    assert_eq!(sites_of(&status_table(&o, &q, at(1_010))), ["shop-1/eu", "shop-2/eu"]);
    let v: serde_json::Value = serde_json::from_str(&status_json(&o, &q, at(1_010))).unwrap();
    let ids: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["site_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["shop-1", "shop-2"]);
    let q = Query { regions: vec!["mars".into()], ..Query::default() };
    assert!(status_table(&o, &q, at(1_010)).contains("(no row matches --state, --site and --region)"));
}

#[test]
fn the_table_is_capped_with_a_note_and_json_is_not() {
    let o = fleet();
    let q = Query { limit: Some(2), sort: Sort::Site, ..Query::default() };
    let t = status_table(&o, &q, at(1_010));
    assert_eq!(sites_of(&t), ["api/eu", "api/us"]);
    assert!(t.contains("(4 more rows not shown: --limit 0 shows all"), "{t}");
    let v: serde_json::Value = serde_json::from_str(&status_json(&o, &q, at(1_010))).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6, "--json keeps everything");
    let q = Query { limit: None, sort: Sort::Since, ..Query::default() };
    let t = status_table(&o, &q, at(1_010));
    assert_eq!(sites_of(&t), ["blog/eu", "api/eu", "shop-1/eu", "api/us", "shop-2/us", "shop-2/eu"]);
    assert!(!t.contains("not shown"), "{t}");
}
