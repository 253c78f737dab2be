//! The words and the request bodies: a [`Notice`] as a title and a text, and as each provider's
//! documented request — sitemon's own JSON for webhooks, a Slack incoming-webhook message, a
//! PagerDuty Events API v2 event (`dedup_key` = incident id, or the storm's id; `resolve` on
//! close).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::notice::Notice;
use super::notice::Sites;
use crate::domain::{EndReason, EventKind, Incident, IncidentEvent, IncidentKind};

/// PagerDuty refuses a summary longer than this.
const PD_SUMMARY_MAX: usize = 1024;

/// A notice in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub text: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn whom(i: &Incident) -> String {
    match &i.region {
        Some(r) => format!("{} from {r}", i.site_id),
        None => i.site_id.clone(),
    }
}

/// PagerDuty's severity: an outage is critical, slowness or an expiring certificate a warning.
fn severity(n: &Notice) -> &'static str {
    match n {
        Notice::Test { .. } => "info",
        Notice::Event(e) if e.incident.kind != IncidentKind::Down => "warning",
        _ => "critical",
    }
}

/// A DEGRADED or CERT_EXPIRING incident's opening (or, with `due`, its reminder) in words.
fn condition(i: &Incident, prefix: &str, due: Option<DateTime<Utc>>) -> Message {
    let (title, what) = condition_words(i.kind);
    let lasted = due.map_or_else(String::new, |due| {
        format!(", {} now", humantime::format_duration((due - i.started_at).to_std().unwrap_or_default()))
    });
    let why = i.error.as_deref().unwrap_or("see its checks");
    Message {
        title: format!("{prefix}{title}: {}", whom(i)),
        text: format!("{} {what} since {}{lasted}: {why}. {}", whom(i), time(i.started_at), i.url),
    }
}

/// A condition's title and what it says of the site.
fn condition_words(kind: IncidentKind) -> (&'static str, &'static str) {
    match kind {
        IncidentKind::CertExpiring => ("CERTIFICATE EXPIRING", "has a certificate near its expiry"),
        _ => ("SLOW", "is slow"),
    }
}

fn why(i: &Incident) -> String {
    match (i.failure_kind, &i.error) {
        (Some(k), Some(e)) => format!("{}: {e}", k.as_str().to_lowercase()),
        (Some(k), None) => k.as_str().to_lowercase(),
        (None, Some(e)) => e.clone(),
        (None, None) => "failed checks".to_owned(),
    }
}

impl Message {
    pub fn of(n: &Notice) -> Self {
        match n {
            Notice::Event(e) if e.kind == EventKind::Opened && e.incident.kind != IncidentKind::Down => {
                condition(&e.incident, "", None)
            }
            Notice::Event(e) if e.incident.kind != IncidentKind::Down => {
                let i = &e.incident;
                let end = i.ended_at.unwrap_or(e.at);
                let lasted = humantime::format_duration((end - i.started_at).to_std().unwrap_or_default());
                let title = match i.kind {
                    IncidentKind::CertExpiring => "CERTIFICATE RENEWED",
                    _ => "NO LONGER SLOW",
                };
                let text = match i.kind {
                    IncidentKind::CertExpiring => format!(
                        "{}'s certificate no longer expires within the warning period since {}, after {lasted}. {}",
                        whom(i),
                        time(end),
                        i.url
                    ),
                    _ => format!(
                        "{} is fast again since {}, after {lasted} slow. {}",
                        whom(i),
                        time(end),
                        i.url
                    ),
                };
                Message { title: format!("{title}: {}", whom(i)), text }
            }
            Notice::Event(e) if e.kind == EventKind::Opened => {
                let i = &e.incident;
                Message {
                    title: format!("DOWN: {}", whom(i)),
                    text: format!(
                        "{} is down since {} ({}), {} failed checks. {}",
                        whom(i),
                        time(i.started_at),
                        why(i),
                        i.failed_checks,
                        i.url
                    ),
                }
            }
            Notice::Event(e) => {
                let i = &e.incident;
                let end = i.ended_at.unwrap_or(e.at);
                let lasted = humantime::format_duration((end - i.started_at).to_std().unwrap_or_default());
                if i.end_reason == Some(EndReason::Retired) {
                    Message {
                        title: format!("NO LONGER REPORTING: {}", whom(i)),
                        text: format!(
                            "{} was down for {lasted} and has sent no result since {}; its incident is closed as retired. {}",
                            whom(i),
                            time(end),
                            i.url
                        ),
                    }
                } else {
                    Message {
                        title: format!("UP: {}", whom(i)),
                        text: format!(
                            "{} is up again since {}, after {lasted} down. {}",
                            whom(i),
                            time(end),
                            i.url
                        ),
                    }
                }
            }
            Notice::Reminder { opened, due } if opened.incident.kind != IncidentKind::Down => {
                condition(&opened.incident, "STILL ", Some(*due))
            }
            Notice::Reminder { opened, due } => {
                let i = &opened.incident;
                let lasted = humantime::format_duration((*due - i.started_at).to_std().unwrap_or_default());
                Message {
                    title: format!("STILL DOWN: {}", whom(i)),
                    text: format!(
                        "{} has been down for {lasted}, since {} ({}). {}",
                        whom(i),
                        time(i.started_at),
                        why(i),
                        i.url
                    ),
                }
            }
            Notice::StormStarted { opened, .. } => Message {
                title: format!("{} incidents opened at once", opened.count),
                text: format!(
                    "Opened: {}. Further openings and closings come as grouped updates until it settles.",
                    opened.describe()
                ),
            },
            Notice::StormUpdate { opened, closed, open, .. } => Message {
                title: format!("Storm update: {open} still open"),
                text: [("Opened", opened), ("Closed", closed)]
                    .iter()
                    .filter(|(_, s)| s.count > 0)
                    .map(|(what, s)| format!("{what}: {}.", s.describe()))
                    .collect::<Vec<_>>()
                    .join(" "),
            },
            Notice::Test { route, .. } => Message {
                title: format!("sitemon test message (route {route})"),
                text: format!("A test of route {route} by `sitemon notify test`: nothing is down."),
            },
            Notice::StormCleared { .. } => Message {
                title: "Storm cleared".to_owned(),
                text: "The last incident of the storm still open has closed.".to_owned(),
            },
            Notice::StormEnded { open, .. } => Message {
                title: format!("Storm over: {} still open", open.count),
                text: if open.count == 0 {
                    "Every incident of the storm has closed.".to_owned()
                } else {
                    format!("Still open: {}. Their closings come one by one.", open.describe())
                },
            },
        }
    }
}

fn incident_json(i: &Incident) -> Value {
    json!({
        "incident_id": i.incident_id,
        "kind": i.kind.as_str(),
        "site_id": i.site_id,
        "region": i.region,
        "url": i.url,
        "started_at": time(i.started_at),
        "confirmed_at": time(i.confirmed_at),
        "ended_at": i.ended_at.map(time),
        "end_reason": i.end_reason.map(EndReason::as_str),
        "regions": i.regions,
        "failure_kind": i.failure_kind.map(|k| k.as_str()),
        "error": i.error,
        "failed_checks": i.failed_checks,
    })
}

fn event_json(e: &IncidentEvent) -> Value {
    json!({"event_id": e.event_id, "kind": e.kind.as_str(), "at": time(e.at), "incident": incident_json(&e.incident)})
}

fn sites_json(s: &Sites) -> Value {
    json!({"named": s.named, "count": s.count})
}

/// sitemon's webhook body: the words, the kind of notice, and its data.
pub fn webhook_body(n: &Notice, delivery_id: uuid::Uuid) -> Value {
    let m = Message::of(n);
    let mut body = json!({"delivery_id": delivery_id, "title": m.title, "text": m.text});
    let (kind, data) = match n {
        Notice::Event(e) if e.kind == EventKind::Opened => {
            ("incident.opened", json!({"event": event_json(e)}))
        }
        Notice::Event(e) => ("incident.closed", json!({"event": event_json(e)})),
        Notice::Reminder { opened, due } => {
            ("incident.reminder", json!({"event": event_json(opened), "due": time(*due)}))
        }
        Notice::StormStarted { storm_id, opened } => (
            "storm.started",
            json!({"storm": {"storm_id": storm_id, "seq": 0, "opened": sites_json(opened)}}),
        ),
        Notice::StormUpdate { storm_id, seq, opened, closed, open } => (
            "storm.update",
            json!({"storm": {"storm_id": storm_id, "seq": seq, "opened": sites_json(opened),
                             "closed": sites_json(closed), "open": open}}),
        ),
        Notice::StormEnded { storm_id, seq, open, cleared } => (
            "storm.ended",
            json!({"storm": {"storm_id": storm_id, "seq": seq, "open": sites_json(open), "cleared": cleared}}),
        ),
        Notice::StormCleared { storm_id, seq } => {
            ("storm.cleared", json!({"storm": {"storm_id": storm_id, "seq": seq}}))
        }
        Notice::Test { route, test_id } => ("test", json!({"test": {"route": route, "test_id": test_id}})),
    };
    body["type"] = json!(kind);
    if let (Some(b), Value::Object(d)) = (body.as_object_mut(), data) {
        b.extend(d);
    }
    body
}

/// An email: its subject and plain text.
pub fn email_body(n: &Notice) -> Value {
    let m = Message::of(n);
    json!({"subject": m.title, "text": m.text})
}

/// A Slack incoming-webhook message (`text`, in Slack's mrkdwn).
pub fn slack_body(n: &Notice) -> Value {
    let m = Message::of(n);
    json!({"text": format!("*{}*\n{}", m.title, m.text)})
}

/// A PagerDuty Events API v2 event, or none for a reminder (PagerDuty re-notifies by itself).
/// Openings trigger and closings resolve the incident's alert (`dedup_key` = incident id); a
/// storm is one alert of its own, resolved when it ends with nothing left open.
pub fn pagerduty_body(n: &Notice, routing_key: &str) -> Option<Value> {
    let m = Message::of(n);
    let mut summary = format!("{}: {}", m.title, m.text);
    if summary.len() > PD_SUMMARY_MAX {
        let mut cut = PD_SUMMARY_MAX - 3;
        while !summary.is_char_boundary(cut) {
            cut -= 1;
        }
        summary.truncate(cut);
        summary.push_str("...");
    }
    let (action, dedup, source, details) = match n {
        Notice::Reminder { .. } => return None,
        Notice::Event(e) => {
            let action = if e.kind == EventKind::Opened { "trigger" } else { "resolve" };
            (action, e.incident.incident_id, e.incident.site_id.clone(), event_json(e))
        }
        Notice::StormStarted { storm_id, .. } | Notice::StormUpdate { storm_id, .. } => {
            ("trigger", *storm_id, "sitemon".to_owned(), webhook_body(n, *storm_id))
        }
        // Resolved once none of the storm's own incidents (those not triggered alone) is open.
        Notice::StormEnded { storm_id, cleared, .. } => {
            let action = if *cleared { "resolve" } else { "trigger" };
            (action, *storm_id, "sitemon".to_owned(), webhook_body(n, *storm_id))
        }
        Notice::StormCleared { storm_id, .. } => {
            ("resolve", *storm_id, "sitemon".to_owned(), webhook_body(n, *storm_id))
        }
        // An alert of its own, of the lowest severity.
        Notice::Test { test_id, .. } => {
            ("trigger", *test_id, "sitemon".to_owned(), webhook_body(n, *test_id))
        }
    };
    let mut body =
        json!({"routing_key": routing_key, "event_action": action, "dedup_key": dedup.to_string()});
    if action == "trigger" {
        body["payload"] = json!({
            "summary": summary,
            "source": source,
            "severity": severity(n),
            "component": source,
            "custom_details": details,
        });
        body["client"] = json!("sitemon");
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FailureKind;
    use chrono::TimeZone;

    fn opened() -> IncidentEvent {
        let t = Utc.with_ymd_and_hms(2026, 12, 4, 8, 0, 0).unwrap();
        let incident = Incident {
            incident_id: Incident::id_for("shop", None, t),
            kind: crate::domain::IncidentKind::Down,
            site_id: "shop".into(),
            region: None,
            url: "https://shop.test/".into(),
            started_at: t,
            confirmed_at: t + chrono::TimeDelta::seconds(20),
            ended_at: None,
            end_reason: None,
            regions: vec!["eu".into(), "us".into()],
            failure_kind: Some(FailureKind::Timeout),
            error: Some("no answer in 5s".into()),
            failed_checks: 6,
        };
        IncidentEvent::new(EventKind::Opened, t + chrono::TimeDelta::seconds(20), &incident)
    }

    fn closed() -> IncidentEvent {
        let mut i = opened().incident;
        i.ended_at = Some(i.started_at + chrono::TimeDelta::minutes(12));
        i.end_reason = Some(EndReason::Recovered);
        IncidentEvent::new(EventKind::Closed, i.ended_at.unwrap(), &i)
    }

    #[test]
    fn words_say_what_happened() {
        let m = Message::of(&Notice::Event(opened()));
        assert_eq!(m.title, "DOWN: shop");
        assert_eq!(
            m.text,
            "shop is down since 2026-12-04T08:00:00Z (timeout: no answer in 5s), 6 failed checks. https://shop.test/"
        );
        let m = Message::of(&Notice::Event(closed()));
        assert_eq!(m.title, "UP: shop");
        assert!(m.text.contains("after 12m down"), "{}", m.text);
    }

    #[test]
    fn slowness_and_an_expiring_certificate_have_words_of_their_own() {
        let as_kind = |e: IncidentEvent, kind: IncidentKind, error: &str| {
            let mut e = e;
            (e.incident.kind, e.incident.error, e.incident.failure_kind) = (kind, Some(error.into()), None);
            e
        };
        let slow =
            as_kind(opened(), IncidentKind::Degraded, "checks took up to 2300 ms (degraded above 800 ms)");
        let m = Message::of(&Notice::Event(slow.clone()));
        assert_eq!(m.title, "SLOW: shop");
        assert_eq!(
            m.text,
            "shop is slow since 2026-12-04T08:00:00Z: checks took up to 2300 ms (degraded above 800 ms). https://shop.test/"
        );
        let due = slow.incident.started_at + chrono::TimeDelta::hours(1);
        let m = Message::of(&Notice::Reminder { opened: slow.clone(), due });
        assert_eq!(m.title, "STILL SLOW: shop");
        assert!(m.text.contains(", 1h now: checks took"), "{}", m.text);
        let m = Message::of(&Notice::Event(as_kind(closed(), IncidentKind::Degraded, "x")));
        assert_eq!(m.title, "NO LONGER SLOW: shop");
        assert!(m.text.contains("is fast again since") && m.text.contains("after 12m slow"), "{}", m.text);
        let cert = as_kind(
            opened(),
            IncidentKind::CertExpiring,
            "the certificate expires at 2026-12-10T00:00:00+00:00",
        );
        assert_eq!(Message::of(&Notice::Event(cert.clone())).title, "CERTIFICATE EXPIRING: shop");
        let m = Message::of(&Notice::Event(as_kind(closed(), IncidentKind::CertExpiring, "x")));
        assert_eq!(m.title, "CERTIFICATE RENEWED: shop");
        // A warning to PagerDuty, with its kind in the webhook body.
        let pd = pagerduty_body(&Notice::Event(cert.clone()), "K").unwrap();
        assert_eq!(pd["payload"]["severity"], "warning");
        assert_eq!(
            webhook_body(&Notice::Event(cert), uuid::Uuid::nil())["event"]["incident"]["kind"],
            "CERT_EXPIRING"
        );
    }

    #[test]
    fn the_webhook_body_carries_the_delivery_id_and_the_event() {
        let id = uuid::Uuid::from_u128(7);
        let b = webhook_body(&Notice::Event(opened()), id);
        assert_eq!(b["type"], "incident.opened");
        assert_eq!(b["delivery_id"], id.to_string());
        assert_eq!(b["event"]["incident"]["site_id"], "shop");
        assert_eq!(b["event"]["incident"]["regions"], json!(["eu", "us"]));
        assert_eq!(b["event"]["incident"]["failure_kind"], "TIMEOUT");
        assert_eq!(b["title"], "DOWN: shop");
    }

    #[test]
    fn pagerduty_triggers_and_resolves_by_incident() {
        let t = pagerduty_body(&Notice::Event(opened()), "R0UT1NGKEY").unwrap();
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["routing_key"], "R0UT1NGKEY");
        assert_eq!(t["dedup_key"], opened().incident.incident_id.to_string());
        assert_eq!(t["payload"]["severity"], "critical");
        assert_eq!(t["payload"]["source"], "shop");
        assert!(t["payload"]["summary"].as_str().unwrap().starts_with("DOWN: shop: shop is down"));
        let r = pagerduty_body(&Notice::Event(closed()), "R0UT1NGKEY").unwrap();
        assert_eq!(
            (r["event_action"].as_str(), r["dedup_key"].clone()),
            (Some("resolve"), t["dedup_key"].clone())
        );
        assert!(r.get("payload").is_none(), "a resolve needs no payload");
        let reminder = Notice::Reminder { opened: opened(), due: Utc::now() };
        assert!(pagerduty_body(&reminder, "k").is_none());
    }

    #[test]
    fn pagerduty_resolves_a_storm_once_its_own_incidents_closed() {
        let id = uuid::Uuid::from_u128(9);
        let ended = |cleared| Notice::StormEnded { storm_id: id, seq: 2, open: Sites::of(["a"]), cleared };
        let action =
            |n: &Notice| pagerduty_body(n, "k").unwrap()["event_action"].as_str().unwrap().to_owned();
        assert_eq!(action(&ended(false)), "trigger", "its own still open: the alert stays");
        assert_eq!(action(&ended(true)), "resolve");
        assert_eq!(action(&Notice::StormCleared { storm_id: id, seq: 3 }), "resolve");
        assert_eq!(pagerduty_body(&ended(true), "k").unwrap()["dedup_key"], id.to_string());
    }

    #[test]
    fn a_long_summary_is_cut_for_pagerduty() {
        let mut e = opened();
        e.incident.error = Some("é".repeat(2000));
        let b = pagerduty_body(&Notice::Event(e), "k").unwrap();
        let s = b["payload"]["summary"].as_str().unwrap();
        assert!(s.len() <= PD_SUMMARY_MAX && s.ends_with("..."), "{}", s.len());
    }

    #[test]
    fn slack_gets_text() {
        let b = slack_body(&Notice::StormStarted {
            storm_id: uuid::Uuid::from_u128(1),
            opened: Sites::of(["a", "b", "c"]),
        });
        assert_eq!(
            b,
            json!({"text": "*3 incidents opened at once*\nOpened: a, b, c. Further openings and closings come as grouped updates until it settles."})
        );
    }
}
