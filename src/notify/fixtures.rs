//! Events for the unit tests of the alerting logic.

use chrono::{DateTime, TimeZone, Utc};

use crate::domain::{EventKind, Incident, IncidentEvent};

/// `secs` after a fixed moment.
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
}

/// An event of `site`'s incident (started and confirmed at `t(0)`; a closing ends at `t(at)`),
/// read at `t(at)`.
pub fn event(site: &str, region: Option<&str>, kind: EventKind, at: i64) -> IncidentEvent {
    let mut incident = Incident::sample(site, region, t(0));
    if kind == EventKind::Closed {
        incident.ended_at = Some(t(at));
    }
    IncidentEvent::new(kind, t(at), &incident)
}

/// A planner with one route `all` over every site (site-wide, sending resolutions) to
/// `providers` (each a webhook, but `pd` PagerDuty), storms above `storm.threshold`.
pub fn planner(
    providers: &[&str],
    storm: super::StormPolicy,
    maintenance: Vec<super::Maintenance>,
) -> super::Planner {
    use super::{Channel, Route, Scope};
    let route = Route {
        name: "all".into(),
        sites: vec![],
        scope: Scope::Site,
        kinds: vec![],
        send_on_resolved: true,
        repeat_every: None,
        providers: providers.iter().map(|p| (*p).to_owned()).collect(),
    };
    let channels = providers
        .iter()
        .map(|p| ((*p).to_owned(), if *p == "pd" { Channel::PagerDuty } else { Channel::Webhook }))
        .collect();
    super::Planner::new(vec![route], channels, storm, maintenance)
}
