//! The latest-status table: the fleet's summary, then site, state, code, latency, since (the rows
//! `fleet.rs` selects) — and the open incidents, as text or JSON. A site whose newest result is
//! older than twice its interval shows as STALE; an up site with an open DEGRADED incident as
//! DEGRADED.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::fleet::{self, Query, Sort, State};
use crate::domain::{CheckStatus, Incident, IncidentKind, SiteStatus};
use crate::notify::LastDelivery;
use crate::ports::{DeliveryStore, StatusStore, StoreError};

/// What `sitemon status` shows: the latest status per site and region, and the open incidents.
#[derive(Debug, Default)]
pub struct Overview {
    pub sites: Vec<SiteStatus>,
    pub incidents: Vec<Incident>,
    /// The newest alert about each open incident (`sitemon notify`, or `sitemon run`'s).
    pub alerts: Vec<LastDelivery>,
}

impl Overview {
    pub async fn read<S: StatusStore>(store: &S) -> Result<Self, StoreError> {
        Ok(Overview {
            sites: store.latest().await?,
            incidents: store.open_incidents().await?,
            alerts: Vec::new(),
        })
    }

    /// Reads the newest alert of each open incident from `deliveries`. A database `notify` never
    /// used (or older than it) has none to show: then there are none.
    pub async fn read_alerts<D: DeliveryStore>(&mut self, deliveries: &D) {
        let ids: Vec<uuid::Uuid> = self.incidents.iter().map(|i| i.incident_id).collect();
        match deliveries.last_deliveries(&ids).await {
            Ok(alerts) => self.alerts = alerts,
            Err(e) => tracing::debug!(error = %crate::error_chain::Chain(&e), "no alerts read"),
        }
    }

    /// The newest alert about an incident.
    fn alert(&self, incident: &Incident) -> Option<&LastDelivery> {
        self.alerts.iter().find(|a| a.subject == incident.incident_id)
    }

    /// The open outage of a site (`region: None`: the site as a whole).
    fn incident(&self, site: &str, region: Option<&str>) -> Option<&Incident> {
        self.incidents
            .iter()
            .find(|i| i.kind == IncidentKind::Down && i.site_id == site && i.region.as_deref() == region)
    }

    /// The site's open DEGRADED and CERT_EXPIRING incidents.
    fn conditions<'a>(&'a self, site: &'a str) -> impl Iterator<Item = &'a Incident> {
        self.incidents.iter().filter(move |i| i.kind != IncidentKind::Down && i.site_id == site)
    }
}

fn up_down(s: &SiteStatus) -> &'static str {
    match s.status {
        CheckStatus::Success => "UP",
        CheckStatus::Failure => "DOWN",
        CheckStatus::Missed => "MISSED",
    }
}

fn state(s: &SiteStatus, o: &Overview, now: DateTime<Utc>) -> &'static str {
    match State::of(s, o, now) {
        State::Stale => "STALE",
        State::Degraded => "DEGRADED",
        _ => up_down(s),
    }
}

/// How long from `since` to `now`, in whole seconds (`16m 53s`).
fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - since).num_seconds().max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", elapsed(since, now))
}

fn latency(us: Option<i64>) -> String {
    match us {
        Some(us) if us >= 1_000_000 => format!("{:.2} s", us as f64 / 1e6),
        Some(us) => format!("{:.1} ms", us as f64 / 1e3),
        None => "-".to_owned(),
    }
}

/// Fixed-width columns under a header; the last column is not padded.
pub(super) fn columns<const N: usize>(header: [&str; N], cells: &[[String; N]]) -> String {
    let cells: Vec<[String; N]> =
        cells.iter().map(|row| row.clone().map(|c| super::printable::printable(&c).into_owned())).collect();
    let cells = &cells[..];
    let mut widths = header.map(str::len);
    for row in cells {
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
    for row in cells {
        line(&mut out, &row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

fn failure(kind: Option<crate::domain::FailureKind>, error: Option<&str>) -> String {
    match (kind, error) {
        (Some(k), Some(e)) => format!("{}: {e}", k.as_str().to_lowercase()),
        (Some(k), None) => k.as_str().to_lowercase(),
        _ => String::new(),
    }
}

/// One line per site and region, then the open incidents.
pub fn status_table(o: &Overview, q: &Query, now: DateTime<Utc>) -> String {
    let header = ["SITE", "REGION", "STATE", "CODE", "LATENCY", "SINCE", "DETAIL"];
    let rows = q.select(o, now);
    let shown = q.limit.map_or(rows.len(), |n| n.min(rows.len()));
    let cells: Vec<[String; 7]> = rows[..shown]
        .iter()
        .map(|s| {
            let mut detail = failure(s.failure_kind, s.error.as_deref());
            if s.is_stale(now) {
                detail =
                    format!("no result for {} (was {}) {detail}", elapsed(s.scheduled_at, now), up_down(s));
            } else if s.scheduled_at > now {
                // Its producer's clock runs ahead of this one.
                detail = format!("ahead by {} {detail}", elapsed(now, s.scheduled_at));
            }
            [
                s.site_id.clone(),
                s.region.clone(),
                state(s, o, now).to_owned(),
                s.status_code.map_or("-".to_owned(), |c| c.to_string()),
                latency(s.total_us),
                age(s.status_since, now),
                detail.trim_end().to_owned(),
            ]
        })
        .collect();
    if o.sites.is_empty() {
        let mut out = columns(header, &cells);
        out.push_str("(no results yet: each site is first checked at its own slot, within one interval)\n");
        return out;
    }
    let mut out = fleet::summary(o, now);
    out.push('\n');
    if rows.is_empty() {
        out.push_str("(no row matches --state, --site and --region)\n");
    } else {
        out.push_str(&columns(header, &cells));
    }
    if let Some(note) = fleet::left_out(shown, rows.len()) {
        out.push_str(&note);
        out.push('\n');
    }
    if !o.incidents.is_empty() {
        let header = ["OPEN INCIDENT", "SCOPE", "SINCE", "REGIONS", "FAILED", "LAST ALERT", "FIRST FAILURE"];
        let cells: Vec<[String; 7]> = o
            .incidents
            .iter()
            .map(|i| {
                [
                    i.site_id.clone(),
                    match (i.kind, &i.region) {
                        (IncidentKind::Down, Some(r)) => format!("region {r}"),
                        (IncidentKind::Down, None) => "site".to_owned(),
                        (kind, _) => format!("site {}", kind.as_str()),
                    },
                    age(i.started_at, now),
                    i.regions.join(","),
                    i.failed_checks.to_string(),
                    o.alert(i)
                        .map_or("-".to_owned(), |a| format!("{} {} {}", a.provider, a.state, age(a.at, now))),
                    failure(i.failure_kind, i.error.as_deref()),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&columns(header, &cells));
    }
    out
}

fn incident_json(o: &Overview, i: Option<&Incident>) -> serde_json::Value {
    i.map_or(serde_json::Value::Null, |i| {
        let alert = o
            .alert(i)
            .map(|a| serde_json::json!({"provider": a.provider, "state": a.state, "at": a.at.to_rfc3339()}));
        serde_json::json!({
            "last_alert": alert,
            "incident_id": i.incident_id.to_string(),
            "kind": i.kind.as_str(),
            "started_at": i.started_at.to_rfc3339(),
            "confirmed_at": i.confirmed_at.to_rfc3339(),
            "regions": i.regions,
            "failed_checks": i.failed_checks,
            "failure_kind": i.failure_kind.map(|k| k.as_str()),
            "error": i.error,
        })
    })
}

/// The same rows as a JSON array; each carries `stale`, its region's open `incident` and its
/// site's open `site_incident` (or null).
pub fn status_json(o: &Overview, q: &Query, now: DateTime<Utc>) -> String {
    let all = Query { sort: Sort::Site, limit: None, ..q.clone() };
    let items: Vec<serde_json::Value> = all
        .select(o, now)
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "site_id": s.site_id,
                "region": s.region,
                "url": s.url,
                "state": state(s, o, now),
                "stale": s.is_stale(now),
                "status": s.status.as_str(),
                "status_code": s.status_code,
                "failure_kind": s.failure_kind.map(|k| k.as_str()),
                "error": s.error,
                "total_us": s.total_us,
                "consecutive_failures": s.consecutive_failures,
                "status_since": s.status_since.to_rfc3339(),
                "scheduled_at": s.scheduled_at.to_rfc3339(),
                "interval_ms": s.interval_ms,
                "incident": incident_json(o, o.incident(&s.site_id, Some(&s.region))),
                "site_incident": incident_json(o, o.incident(&s.site_id, None)),
                "conditions": o.conditions(&s.site_id).map(|i| incident_json(o, Some(i))).collect::<Vec<_>>(),
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
            interval_ms: Some(60_000),
        }
    }

    fn sites(sites: Vec<SiteStatus>) -> Overview {
        Overview { sites, incidents: Vec::new(), alerts: Vec::new() }
    }

    /// The table as `status` prints it by default, from its header on (the summary apart).
    fn table(o: &Overview, now: DateTime<Utc>) -> String {
        let t = status_table(o, &Query::default(), now);
        let from = t.find("SITE ").unwrap_or(0);
        t[from..].to_owned()
    }

    fn json(o: &Overview, now: DateTime<Utc>) -> String {
        status_json(o, &Query::default(), now)
    }

    #[test]
    fn table_aligns_columns_and_explains_failures() {
        let now = Utc.timestamp_opt(1_090, 0).unwrap();
        let t =
            table(&sites(vec![row("a", CheckStatus::Success), row("long-name", CheckStatus::Failure)]), now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("SITE       REGION  STATE"), "{t}");
        // Problems first.
        assert!(lines[1].contains("DOWN") && lines[1].contains("timeout: no complete response"), "{t}");
        assert!(lines[2].contains("UP") && lines[2].contains("200") && lines[2].contains("1.5 ms"), "{t}");
        assert!(lines[2].contains("1m 30s ago"), "{t}");
        assert!(table(&sites(vec![]), now).contains("no results yet"));
    }

    #[test]
    fn a_region_whose_clock_runs_ahead_shows_by_how_much() {
        let now = Utc.timestamp_opt(1_000 - 95, 0).unwrap();
        let t = table(&sites(vec![row("a", CheckStatus::Success)]), now);
        assert!(t.lines().nth(1).unwrap().contains("ahead by 1m 35s"), "{t}");
        let t = table(&sites(vec![row("a", CheckStatus::Success)]), Utc.timestamp_opt(1_000, 0).unwrap());
        assert!(!t.contains("ahead"), "{t}");
    }

    #[test]
    fn a_site_silent_for_two_intervals_is_stale_and_open_incidents_are_listed() {
        let at_2m = Utc.timestamp_opt(1_120, 0).unwrap();
        let at_2m1s = Utc.timestamp_opt(1_121, 0).unwrap();
        let o = sites(vec![row("a", CheckStatus::Success)]);
        assert!(table(&o, at_2m).lines().nth(1).unwrap().contains(" UP "));
        let t = table(&o, at_2m1s);
        assert!(t.lines().nth(1).unwrap().contains("STALE") && t.contains("(was UP)"), "{t}");
        assert!(t.contains("no result for 2m 1s (was UP)"), "{t}");
        let v: serde_json::Value = serde_json::from_str(&json(&o, at_2m1s)).unwrap();
        assert_eq!((v[0]["state"].as_str(), v[0]["stale"].as_bool()), (Some("STALE"), Some(true)));

        let started = Utc.timestamp_opt(900, 0).unwrap();
        let incident = |region: Option<&str>| Incident {
            incident_id: Incident::id_for("a", region, started),
            kind: crate::domain::IncidentKind::Down,
            site_id: "a".into(),
            region: region.map(str::to_owned),
            url: "http://x/".into(),
            started_at: started,
            confirmed_at: started,
            ended_at: None,
            end_reason: None,
            regions: vec!["eu".into(), "us".into()],
            failure_kind: Some(FailureKind::Connect),
            error: Some("refused".into()),
            failed_checks: 7,
        };
        let alerts = vec![LastDelivery {
            subject: incident(None).incident_id,
            provider: "slack".into(),
            state: "SENT".into(),
            at: started + chrono::TimeDelta::seconds(20),
        }];
        let o = Overview { sites: o.sites, incidents: vec![incident(None), incident(Some("eu"))], alerts };
        let t = table(&o, at_2m);
        let lines: Vec<&str> = t.lines().skip_while(|l| !l.starts_with("OPEN INCIDENT")).collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines[1].contains("site") && lines[1].contains("eu,us") && lines[1].contains("connect: refused")
        );
        assert!(lines[2].contains("region eu") && lines[2].contains("3m 40s ago"), "{t}");
        assert!(
            lines[1].contains("slack SENT 3m 20s ago") && lines[2].contains(" - "),
            "the last alert: {t}"
        );
        let v: serde_json::Value = serde_json::from_str(&json(&o, at_2m)).unwrap();
        assert_eq!(v[0]["site_incident"]["failed_checks"], 7);
        assert_eq!(v[0]["incident"]["regions"][1], "us");
        assert_eq!(v[0]["site_incident"]["last_alert"]["provider"], "slack");
        assert_eq!(v[0]["incident"]["last_alert"], serde_json::Value::Null);
    }

    #[test]
    fn hostile_text_stays_on_its_line() {
        let now = Utc.timestamp_opt(1_000, 0).unwrap();
        let mut r = row("a", CheckStatus::Failure);
        r.error = Some("boom\n\x1b[2JFAKE  UP".into());
        let t = table(&sites(vec![r]), now);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(!t.contains('\x1b'));
    }

    #[test]
    fn json_has_one_object_per_site() {
        let now = Utc.timestamp_opt(1_000, 0).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&json(&sites(vec![row("a", CheckStatus::Success)]), now)).unwrap();
        assert_eq!(v[0]["site_id"], "a");
        assert_eq!(v[0]["state"], "UP");
        assert_eq!(v[0]["status_code"], 200);
        assert_eq!(v[0]["incident"], serde_json::Value::Null);
    }
}
