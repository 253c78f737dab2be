//! The latest-status table: site, state, code, latency, since — as text or JSON.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::domain::{CheckStatus, SiteStatus};

fn state(s: &SiteStatus) -> &'static str {
    match s.status {
        CheckStatus::Success => "UP",
        CheckStatus::Failure => "DOWN",
        CheckStatus::Missed => "MISSED",
    }
}

fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0) as u64;
    let rounded = std::time::Duration::from_secs(secs);
    format!("{} ago", humantime::format_duration(rounded))
}

fn latency(us: Option<i64>) -> String {
    match us {
        Some(us) if us >= 1_000_000 => format!("{:.2} s", us as f64 / 1e6),
        Some(us) => format!("{:.1} ms", us as f64 / 1e3),
        None => "-".to_owned(),
    }
}

/// A fixed-width table, one line per site, with a header.
pub fn status_table(rows: &[SiteStatus], now: DateTime<Utc>) -> String {
    let header = ["SITE", "REGION", "STATE", "CODE", "LATENCY", "SINCE", "DETAIL"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|s| {
            let detail = match (&s.failure_kind, &s.error) {
                (Some(k), Some(e)) => format!("{}: {e}", k.as_str().to_lowercase()),
                (Some(k), None) => k.as_str().to_lowercase(),
                _ => String::new(),
            };
            [
                s.site_id.clone(),
                s.region.clone(),
                state(s).to_owned(),
                s.status_code.map_or("-".to_owned(), |c| c.to_string()),
                latency(s.total_us),
                age(s.status_since, now),
                detail,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, &header);
    for row in &cells {
        line(&mut out, &row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    if rows.is_empty() {
        out.push_str("(no results yet: each site is first checked at its own slot, within one interval)\n");
    }
    out
}

/// The same rows as a JSON array.
pub fn status_json(rows: &[SiteStatus]) -> String {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|s| {
            serde_json::json!({
                "site_id": s.site_id,
                "region": s.region,
                "url": s.url,
                "state": state(s),
                "status": s.status.as_str(),
                "status_code": s.status_code,
                "failure_kind": s.failure_kind.map(|k| k.as_str()),
                "error": s.error,
                "total_us": s.total_us,
                "consecutive_failures": s.consecutive_failures,
                "status_since": s.status_since.to_rfc3339(),
                "scheduled_at": s.scheduled_at.to_rfc3339(),
            })
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("json values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FailureKind;
    use chrono::TimeZone;

    fn row(site: &str, status: CheckStatus) -> SiteStatus {
        let t = Utc.timestamp_opt(1_000, 0).unwrap();
        SiteStatus {
            site_id: site.into(),
            region: "eu".into(),
            url: "http://x/".into(),
            status,
            failure_kind: (status == CheckStatus::Failure).then_some(FailureKind::Timeout),
            error: (status == CheckStatus::Failure).then(|| "no complete response within 1s".into()),
            status_code: (status == CheckStatus::Success).then_some(200),
            total_us: Some(1_500),
            consecutive_failures: 0,
            status_since: t,
            scheduled_at: t,
        }
    }

    #[test]
    fn table_aligns_columns_and_explains_failures() {
        let now = Utc.timestamp_opt(1_090, 0).unwrap();
        let t = status_table(&[row("a", CheckStatus::Success), row("long-name", CheckStatus::Failure)], now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("SITE       REGION  STATE"), "{t}");
        assert!(lines[1].contains("UP") && lines[1].contains("200") && lines[1].contains("1.5 ms"), "{t}");
        assert!(lines[1].contains("1m 30s ago"), "{t}");
        assert!(lines[2].contains("DOWN") && lines[2].contains("timeout: no complete response"), "{t}");
        assert!(status_table(&[], now).contains("no results yet"));
    }

    #[test]
    fn json_has_one_object_per_site() {
        let v: serde_json::Value =
            serde_json::from_str(&status_json(&[row("a", CheckStatus::Success)])).unwrap();
        assert_eq!(v[0]["site_id"], "a");
        assert_eq!(v[0]["state"], "UP");
        assert_eq!(v[0]["status_code"], 200);
    }
}
