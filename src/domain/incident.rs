//! Incidents and their events: one outage of a site, in a region or (`region: None`) as a whole,
//! and its opening and closing as alerting integrations read them. Ids are UUIDv5 of site,
//! region and start (and kind), so deriving twice from the same results gives the same rows.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::FailureKind;

/// Consecutive failures that open an incident, unless a site says otherwise.
pub const DEFAULT_DOWN_AFTER: u32 = 3;
/// Consecutive successes that close one, unless a site says otherwise.
pub const DEFAULT_UP_AFTER: u32 = 1;
/// A certificate expiring within this many days opens a CERT_EXPIRING incident, unless a site
/// says otherwise.
pub const DEFAULT_CERT_WARN_DAYS: u32 = 14;
/// What an incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncidentKind {
    /// The site fails its checks (in a region, or as a whole by a quorum of regions).
    #[default]
    Down,
    /// The site answers, but its checks take longer than its `degraded_above`.
    Degraded,
    /// The site's certificate expires within its `cert_warn_days`.
    CertExpiring,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 3] =
        [IncidentKind::Down, IncidentKind::Degraded, IncidentKind::CertExpiring];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Down => "DOWN",
            IncidentKind::Degraded => "DEGRADED",
            IncidentKind::CertExpiring => "CERT_EXPIRING",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One outage of one site: in one region, or (`region: None`) of the site as a whole; or one
/// stretch of slowness or of an expiring certificate of the site (`kind`).
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub incident_id: Uuid,
    pub kind: IncidentKind,
    pub site_id: String,
    pub region: Option<String>,
    pub url: String,
    /// `scheduled_at` of the first failed check of the outage.
    pub started_at: DateTime<Utc>,
    /// `scheduled_at` of the check that opened it (the threshold or the quorum reached).
    pub confirmed_at: DateTime<Utc>,
    /// `scheduled_at` of the first successful check of the run that closed it (retired: of the
    /// region's last result).
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it closed: its regions recovered, or the region was retired (silent past the expiry).
    pub end_reason: Option<EndReason>,
    /// The regions that agreed (one for a region's incident), sorted.
    pub regions: Vec<String>,
    pub failure_kind: Option<FailureKind>,
    pub error: Option<String>,
    pub failed_checks: i64,
}

impl Incident {
    /// The deterministic id: a replay or a second consumer derives the same one.
    pub fn id_for(site_id: &str, region: Option<&str>, started_at: DateTime<Utc>) -> Uuid {
        let name =
            format!("incident\n{site_id}\n{}\n{}", region.unwrap_or(""), started_at.timestamp_micros());
        Uuid::new_v5(&super::check_id::NAMESPACE, name.as_bytes())
    }

    /// The id of a DEGRADED or CERT_EXPIRING incident: its kind and start.
    pub fn kind_id_for(site_id: &str, kind: IncidentKind, started_at: DateTime<Utc>) -> Uuid {
        // (Its own prefix: no region label can make it an outage's id.)
        let name = format!("incident-{}\n{site_id}\n{}", kind.as_str(), started_at.timestamp_micros());
        Uuid::new_v5(&super::check_id::NAMESPACE, name.as_bytes())
    }

    /// The id of a site-wide incident: its start and the check that confirmed it.
    pub fn site_id_for(site_id: &str, started_at: DateTime<Utc>, confirmed_at: DateTime<Utc>) -> Uuid {
        let (start, confirmed) = (started_at.timestamp_micros(), confirmed_at.timestamp_micros());
        let name = format!("incident\n{site_id}\n\n{start}\n{confirmed}");
        Uuid::new_v5(&super::check_id::NAMESPACE, name.as_bytes())
    }
}

/// Why an incident closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its region (for a site-wide one: enough of its regions) checked successfully again.
    Recovered,
    /// Its region stopped reporting for longer than `consumer.region_expiry` (or made room for a
    /// new label): nothing says it recovered.
    Retired,
}

impl EndReason {
    pub const ALL: [EndReason; 2] = [EndReason::Recovered, EndReason::Retired];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Recovered => "RECOVERED",
            EndReason::Retired => "RETIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Opened,
    Closed,
}

impl EventKind {
    pub const ALL: [EventKind; 2] = [EventKind::Opened, EventKind::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "OPENED",
            EventKind::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An incident opened or closed: what alerting integrations read from the events topic.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentEvent {
    /// UUIDv5 of the incident id and the kind: a reader drops repeats by it.
    pub event_id: Uuid,
    pub kind: EventKind,
    /// `scheduled_at` of the check that caused it.
    pub at: DateTime<Utc>,
    /// The incident as it was at that moment.
    pub incident: Incident,
}

impl IncidentEvent {
    pub fn new(kind: EventKind, at: DateTime<Utc>, incident: &Incident) -> Self {
        let name = format!("event\n{}\n{}", incident.incident_id, kind.as_str());
        IncidentEvent {
            event_id: Uuid::new_v5(&super::check_id::NAMESPACE, name.as_bytes()),
            kind,
            at,
            incident: incident.clone(),
        }
    }
}

/// What folding results into a site's tracks produced.
#[derive(Debug, Default, PartialEq)]
pub struct Derived {
    /// Incidents opened, changed or closed, each as it stands after the fold (once per id).
    pub incidents: Vec<Incident>,
    pub events: Vec<IncidentEvent>,
    /// Results of regions past [`MAX_REGIONS`](super::MAX_REGIONS) for their site: kept in the history only.
    pub ignored: u64,
    /// Results whose slot was judged before they came: kept in the history only.
    pub late: u64,
    /// Regions retired (silent past the expiry, or making room for a new label).
    pub retired: u64,
}

impl Derived {
    pub(super) fn touch(&mut self, incident: &Incident) {
        match self.incidents.iter_mut().find(|i| i.incident_id == incident.incident_id) {
            Some(i) => *i = incident.clone(),
            None => self.incidents.push(incident.clone()),
        }
    }

    pub(super) fn event(&mut self, kind: EventKind, at: DateTime<Utc>, incident: &Incident) {
        self.touch(incident);
        self.events.push(IncidentEvent::new(kind, at, incident));
    }
}

#[cfg(test)]
impl Incident {
    /// An open incident of `site` confirmed at its start, with three failed checks and region
    /// `eu` agreeing: the base unit tests change what they need.
    pub fn sample(site: &str, region: Option<&str>, started: DateTime<Utc>) -> Incident {
        Incident {
            incident_id: Incident::id_for(site, region, started),
            kind: IncidentKind::Down,
            site_id: site.into(),
            region: region.map(Into::into),
            url: format!("https://{site}.test/"),
            started_at: started,
            confirmed_at: started,
            ended_at: None,
            end_reason: None,
            regions: vec!["eu".into()],
            failure_kind: None,
            error: None,
            failed_checks: 3,
        }
    }
}
