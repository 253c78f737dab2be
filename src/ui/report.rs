//! `sitemon report`: one site's SLA summary over a window (per UTC day and in all, MISSED
//! counted apart, whole-site downtime, the incidents) as text, and its raw results as CSV (the
//! summary then goes to the second writer, stderr) or as one JSON document. Results are read
//! page by page from a [`ReportSource`] and written as they come.

use std::io::Write;

use chrono::{DateTime, Utc};

use super::check_report::result_value;
use crate::domain::{CheckResult, DayTally, Incident, Tally, downtime_secs};
use crate::ports::{ReportSource, ResultKey, StoreError};

/// How `sitemon report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The SLA summary as a table (no raw results).
    Text,
    /// The raw results, one row each with a header; the summary goes to stderr.
    Csv,
    /// One object: site, from, to, summary, days, incidents, results.
    Json,
}

/// What to report on: a site and the window `[from, to)` of scheduled times.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub site: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Results read per query.
    pub page_size: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the report from the store")]
    Store(#[from] StoreError),
    #[error("writing the report")]
    Write(#[from] std::io::Error),
    #[error("writing the report")]
    Csv(#[from] csv::Error),
}

/// The columns of the CSV export: those of `check_results`.
pub const RESULT_COLUMNS: [&str; 23] = [
    "check_id",
    "site_id",
    "url",
    "region",
    "scheduled_at",
    "started_at",
    "status",
    "failure_kind",
    "error",
    "status_code",
    "http_version",
    "remote_addr",
    "dns_us",
    "connect_us",
    "tls_us",
    "ttfb_us",
    "total_us",
    "body_bytes",
    "pattern",
    "pattern_matched",
    "tls_not_after",
    "missed_since",
    "missed_slots",
];

/// The summary part of a report.
struct Summary {
    days: Vec<DayTally>,
    total: Tally,
    incidents: Vec<Incident>,
    downtime_s: i64,
}

/// Writes the report of `req` in `format` to `out` (the CSV format's summary to `aside`) and
/// returns the window's tally: all zero for a site without results in it.
pub async fn write_report<S: ReportSource>(
    source: &S,
    req: &ReportRequest,
    format: ReportFormat,
    now: DateTime<Utc>,
    out: &mut impl Write,
    aside: &mut impl Write,
) -> Result<Tally, ReportError> {
    let days = source.daily(&req.site, req.from, req.to).await?;
    let incidents = source.incidents(&req.site, req.from, req.to).await?;
    let summary = Summary {
        total: Tally::of_days(&days),
        downtime_s: downtime_secs(&incidents, req.from, req.to, now),
        days,
        incidents,
    };
    match format {
        ReportFormat::Text => out.write_all(summary_text(req, &summary, now).as_bytes())?,
        ReportFormat::Csv => {
            let mut csv = csv::Writer::from_writer(&mut *out);
            csv.write_record(RESULT_COLUMNS)?;
            each_result(source, req, |r| Ok(csv.write_record(csv_row(r))?)).await?;
            csv.flush()?;
            drop(csv);
            aside.write_all(summary_text(req, &summary, now).as_bytes())?;
        }
        ReportFormat::Json => {
            // The members in this order, then the results as they are read.
            let days: Vec<_> = summary.days.iter().map(day_value).collect();
            let incidents: Vec<_> = summary.incidents.iter().map(|i| incident_value(i, now)).collect();
            write!(
                out,
                "{{\"site\":{},\"from\":{},\"to\":{},\"summary\":{},\"days\":{},\"incidents\":{},\"results\":[",
                serde_json::Value::from(req.site.as_str()),
                serde_json::Value::from(req.from.to_rfc3339()),
                serde_json::Value::from(req.to.to_rfc3339()),
                summary_value(&summary),
                serde_json::Value::from(days),
                serde_json::Value::from(incidents),
            )?;
            let mut first = true;
            each_result(source, req, |r| {
                let sep = if std::mem::take(&mut first) { "\n" } else { ",\n" };
                Ok(write!(out, "{sep}{}", result_value(r))?)
            })
            .await?;
            writeln!(out, "\n]}}")?;
        }
    }
    out.flush()?;
    Ok(summary.total)
}

/// Calls `emit` with every result of the window, oldest first, a page at a time.
async fn each_result<S: ReportSource>(
    source: &S,
    req: &ReportRequest,
    mut emit: impl FnMut(&CheckResult) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let mut after = None;
    loop {
        let page = source.results(&req.site, req.from, req.to, after, req.page_size).await?;
        for r in &page {
            emit(r)?;
        }
        match page.last() {
            Some(last) if page.len() >= req.page_size as usize => {
                after = Some(ResultKey { scheduled_at: last.scheduled_at, check_id: last.check_id });
            }
            _ => return Ok(()),
        }
    }
}

fn csv_row(r: &CheckResult) -> [String; 23] {
    let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        r.check_id.to_string(),
        r.site_id.clone(),
        r.url.clone(),
        r.region.clone(),
        r.scheduled_at.to_rfc3339(),
        r.started_at.to_rfc3339(),
        r.status.as_str().to_owned(),
        r.failure_kind.map_or(String::new(), |k| k.as_str().to_owned()),
        text(&r.error),
        r.status_code.map_or(String::new(), |c| c.to_string()),
        text(&r.http_version),
        text(&r.remote_addr),
        opt(r.dns_us),
        opt(r.connect_us),
        opt(r.tls_us),
        opt(r.ttfb_us),
        opt(r.total_us),
        opt(r.body_bytes),
        text(&r.pattern),
        r.pattern_matched.map_or(String::new(), |m| m.to_string()),
        r.tls_not_after.map_or(String::new(), |t| t.to_rfc3339()),
        r.missed_since.map_or(String::new(), |t| t.to_rfc3339()),
        r.missed_slots.map_or(String::new(), |n| n.to_string()),
    ]
}

/// Uptime rounded to 3 decimals, as the views give it.
fn uptime(t: &Tally) -> Option<f64> {
    t.uptime_pct().map(|p| (p * 1000.0).round() / 1000.0)
}

fn tally_fields(t: &Tally) -> serde_json::Map<String, serde_json::Value> {
    let serde_json::Value::Object(m) = serde_json::json!({
        "checks": t.checks(),
        "successes": t.successes,
        "failures": t.failures,
        "missed": t.missed,
        "uptime_pct": uptime(t),
    }) else {
        unreachable!("a json! object is an object")
    };
    m
}

fn summary_value(s: &Summary) -> serde_json::Value {
    let mut m = tally_fields(&s.total);
    m.insert("downtime_s".into(), s.downtime_s.into());
    m.insert("incidents".into(), s.incidents.len().into());
    m.into()
}

fn day_value(d: &DayTally) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("day".into(), d.day.to_string().into());
    m.extend(tally_fields(&d.tally));
    m.into()
}

fn duration_s(i: &Incident, now: DateTime<Utc>) -> i64 {
    (i.ended_at.unwrap_or(now) - i.started_at).num_seconds().max(0)
}

fn incident_value(i: &Incident, now: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "incident_id": i.incident_id.to_string(),
        "kind": i.kind.as_str(),
        "region": i.region,
        "url": i.url,
        "started_at": i.started_at.to_rfc3339(),
        "confirmed_at": i.confirmed_at.to_rfc3339(),
        "ended_at": i.ended_at.map(|t| t.to_rfc3339()),
        "ongoing": i.ended_at.is_none(),
        "duration_s": duration_s(i, now),
        "regions": i.regions,
        "failure_kind": i.failure_kind.map(|k| k.as_str()),
        "error": i.error,
        "failed_checks": i.failed_checks,
    })
}

fn pct(t: &Tally) -> String {
    uptime(t).map_or("-".to_owned(), |p| format!("{p:.3}%"))
}

fn secs(s: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0) as u64)).to_string()
}

fn summary_text(req: &ReportRequest, s: &Summary, now: DateTime<Utc>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let site = super::printable::printable(&req.site);
    let _ = writeln!(out, "site {site}: {} to {} (UTC days)", req.from.to_rfc3339(), req.to.to_rfc3339());
    let _ = writeln!(
        out,
        "{:<10}  {:>8}  {:>9}  {:>8}  {:>6}  {:>8}",
        "DAY", "CHECKS", "SUCCESSES", "FAILURES", "MISSED", "UPTIME"
    );
    let row = |out: &mut String, label: &str, t: &Tally| {
        let _ = writeln!(
            out,
            "{label:<10}  {:>8}  {:>9}  {:>8}  {:>6}  {:>8}",
            t.checks(),
            t.successes,
            t.failures,
            t.missed,
            pct(t)
        );
    };
    for d in &s.days {
        row(&mut out, &d.day.to_string(), &d.tally);
    }
    row(&mut out, "total", &s.total);
    let _ = writeln!(out, "downtime (incidents of the whole site): {}", secs(s.downtime_s));
    if s.incidents.is_empty() {
        let _ = writeln!(out, "incidents: none");
        return out;
    }
    let _ = writeln!(out, "incidents: {}", s.incidents.len());
    for i in &s.incidents {
        let ended = i.ended_at.map_or("ongoing".to_owned(), |t| t.to_rfc3339());
        let scope = match (i.kind, i.region.as_deref()) {
            (crate::domain::IncidentKind::Down, None) => "site".to_owned(),
            (crate::domain::IncidentKind::Down, Some(r)) => format!("region {r}"),
            (kind, _) => format!("site {}", kind.as_str()),
        };
        let (checks, cause) = match (i.kind, i.failure_kind, &i.error) {
            (crate::domain::IncidentKind::Down, Some(k), Some(e)) => {
                ("failed checks", format!("{}: {e}", k.as_str().to_lowercase()))
            }
            (crate::domain::IncidentKind::Down, Some(k), None) => {
                ("failed checks", k.as_str().to_lowercase())
            }
            (crate::domain::IncidentKind::Down, None, _) => ("failed checks", String::new()),
            // A condition counts the slots it held in, and says why.
            (_, _, e) => ("slots", e.clone().unwrap_or_default()),
        };
        let (scope, cause) = (super::printable::printable(&scope), super::printable::printable(&cause));
        let _ = writeln!(
            out,
            "  {} – {ended}  {}  {scope}  {} {checks}  {cause}",
            i.started_at.to_rfc3339(),
            secs(duration_s(i, now)),
            i.failed_checks
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CheckStatus, FailureKind};
    use chrono::{NaiveDate, TimeZone};

    /// A store stand-in holding one site's results, days and incidents.
    struct Fixed {
        results: Vec<CheckResult>,
        days: Vec<DayTally>,
        incidents: Vec<Incident>,
    }

    impl ReportSource for Fixed {
        async fn daily(
            &self,
            _: &str,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> Result<Vec<DayTally>, StoreError> {
            Ok(self.days.clone())
        }
        async fn incidents(
            &self,
            _: &str,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> Result<Vec<Incident>, StoreError> {
            Ok(self.incidents.clone())
        }
        async fn results(
            &self,
            _: &str,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
            after: Option<ResultKey>,
            limit: u32,
        ) -> Result<Vec<CheckResult>, StoreError> {
            let key = |r: &CheckResult| (r.scheduled_at, r.check_id);
            Ok(self
                .results
                .iter()
                .filter(|r| after.is_none_or(|a| key(r) > (a.scheduled_at, a.check_id)))
                .take(limit as usize)
                .cloned()
                .collect())
        }
    }

    fn fixture() -> (Fixed, ReportRequest, DateTime<Utc>) {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut results: Vec<CheckResult> = (0..5)
            .map(|i| {
                let at = t0 + chrono::Duration::minutes(i);
                let mut r = CheckResult::new("s", "http://s/", "eu", at, at, CheckStatus::Success);
                r.total_us = Some(1000 + i);
                r
            })
            .collect();
        results[1].fail(FailureKind::Connect, "refused, \"twice\"");
        results[2].status = CheckStatus::Missed;
        results.sort_by_key(|r| (r.scheduled_at, r.check_id));
        let days = vec![DayTally {
            day: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            tally: Tally { successes: 3, failures: 1, missed: 1 },
        }];
        let incidents = vec![Incident {
            incident_id: Incident::id_for("s", None, t0),
            kind: crate::domain::IncidentKind::Down,
            site_id: "s".into(),
            region: None,
            url: "http://s/".into(),
            started_at: t0,
            confirmed_at: t0,
            ended_at: Some(t0 + chrono::Duration::minutes(2)),
            end_reason: None,
            regions: vec!["eu".into()],
            failure_kind: Some(FailureKind::Connect),
            error: Some("refused".into()),
            failed_checks: 3,
        }];
        let req =
            ReportRequest { site: "s".into(), from: t0, to: t0 + chrono::Duration::days(1), page_size: 2 };
        (Fixed { results, days, incidents }, req, t0 + chrono::Duration::days(2))
    }

    async fn render(format: ReportFormat) -> (String, String, Tally) {
        let (source, req, now) = fixture();
        let (mut out, mut aside) = (Vec::new(), Vec::new());
        let total = write_report(&source, &req, format, now, &mut out, &mut aside).await.unwrap();
        (String::from_utf8(out).unwrap(), String::from_utf8(aside).unwrap(), total)
    }

    #[tokio::test]
    async fn csv_has_a_header_and_every_result_across_pages_with_the_summary_aside() {
        let (out, aside, total) = render(ReportFormat::Csv).await;
        assert_eq!(total, Tally { successes: 3, failures: 1, missed: 1 });
        let mut rows = csv::Reader::from_reader(out.as_bytes());
        assert_eq!(rows.headers().unwrap().iter().collect::<Vec<_>>(), RESULT_COLUMNS);
        let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 5, "page size 2: three pages\n{out}");
        let statuses: Vec<&str> = rows.iter().map(|r| &r[6]).collect();
        assert_eq!(statuses, ["SUCCESS", "FAILURE", "MISSED", "SUCCESS", "SUCCESS"]);
        assert_eq!(&rows[1][8], "refused, \"twice\"", "quoted as CSV");
        assert_eq!(&rows[0][16], "1000");
        assert!(aside.contains("total") && aside.contains("75.000%"), "{aside}");
    }

    #[tokio::test]
    async fn json_is_one_object_with_summary_days_incidents_and_results() {
        let (out, aside, _) = render(ReportFormat::Json).await;
        assert!(aside.is_empty());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let order = [
            "\"site\":",
            "\"from\":",
            "\"to\":",
            "\"summary\":",
            "\"days\":[",
            "\"incidents\":[",
            "\"results\":[",
        ];
        let at: Vec<usize> = order.iter().map(|k| out.find(k).unwrap()).collect();
        assert!(at.is_sorted(), "members in the documented order: {out}");
        assert_eq!(v["site"], "s");
        assert_eq!(v["summary"]["checks"], 4);
        assert_eq!(v["summary"]["missed"], 1);
        assert_eq!(v["summary"]["uptime_pct"], 75.0);
        assert_eq!(v["summary"]["downtime_s"], 120);
        assert_eq!(v["days"][0]["day"], "2026-01-01");
        assert_eq!(v["incidents"][0]["duration_s"], 120);
        assert_eq!(v["incidents"][0]["region"], serde_json::Value::Null);
        assert_eq!(v["results"].as_array().unwrap().len(), 5);
        assert_eq!(v["results"][4]["total_us"], 1004);
    }

    #[tokio::test]
    async fn text_is_the_summary_table() {
        let (out, aside, _) = render(ReportFormat::Text).await;
        assert!(aside.is_empty());
        assert!(out.contains("2026-01-01         4          3         1       1   75.000%"), "{out}");
        assert!(out.contains("downtime (incidents of the whole site): 2m"), "{out}");
        assert!(out.contains("site  3 failed checks  connect: refused"), "{out}");
    }
}
