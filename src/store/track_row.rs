//! A `site_tracks` row as both databases keep it: every track of one site in one JSON text (the
//! site's own first, then its regions by name; times as µs since the epoch, the open incidents by
//! id), so a batch reads, locks and writes one row per site. Decoded and joined in memory with
//! the open incidents into the domain's [`SiteTracks`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Condition, Derived, FailureKind, Incident, Sample, SiteTracks, Track};

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn us(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

/// A `site_tracks` row as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SiteRow {
    pub site_id: String,
    pub tracks: String,
}

/// One track inside a [`SiteRow`] (region `""`: the site's own); its open incident is read
/// apart, by id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
struct TrackRow {
    region: String,
    down: bool,
    run_up: bool,
    run_len: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_start: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    down_after: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    up_after: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quorum: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incident_id: Option<uuid::Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seen_at: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pending: Vec<Sample>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<ConditionsRow>,
}

/// A site's DEGRADED and CERT_EXPIRING conditions as its own track keeps them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct ConditionsRow {
    #[serde(default)]
    degraded: ConditionRow,
    #[serde(default)]
    cert: ConditionRow,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct ConditionRow {
    run: i32,
    #[serde(default, with = "chrono::serde::ts_microseconds_option")]
    since: Option<DateTime<Utc>>,
    #[serde(default)]
    incident_id: Option<uuid::Uuid>,
}

impl ConditionRow {
    fn of(c: &Condition) -> Self {
        ConditionRow { run: c.run, since: c.since, incident_id: c.incident.as_ref().map(|i| i.incident_id) }
    }

    fn into_condition(self, open: &mut HashMap<uuid::Uuid, Incident>) -> Condition {
        let incident = self.incident_id.and_then(|id| open.remove(&id));
        Condition { run: self.run, since: self.since, incident }
    }
}

impl TrackRow {
    fn of(t: &Track) -> Self {
        let remembered = t.degraded != Condition::default() || t.cert != Condition::default();
        TrackRow {
            region: t.region.clone(),
            down: t.down,
            run_up: t.run_up,
            run_len: t.run_len,
            run_start: us(t.run_start),
            run_kind: t.run_kind.map(|k| k.as_str().to_owned()),
            run_error: t.run_error.clone(),
            last_at: us(t.last_at),
            interval_ms: t.interval_ms,
            down_after: t.down_after,
            up_after: t.up_after,
            quorum: t.quorum,
            incident_id: t.incident.as_ref().map(|i| i.incident_id),
            seen_at: us(t.seen_at),
            pending: t.pending.clone(),
            conditions: remembered.then(|| ConditionsRow {
                degraded: ConditionRow::of(&t.degraded),
                cert: ConditionRow::of(&t.cert),
            }),
        }
    }

    fn into_track(self, open: &mut HashMap<uuid::Uuid, Incident>) -> Track {
        let conditions = self.conditions.unwrap_or_default();
        Track {
            degraded: conditions.degraded.into_condition(open),
            cert: conditions.cert.into_condition(open),
            incident: self.incident_id.and_then(|id| open.remove(&id)),
            region: self.region,
            down: self.down,
            run_up: self.run_up,
            run_len: self.run_len,
            run_start: self.run_start.map(time),
            run_kind: self.run_kind.map(|k| FailureKind::parse(&k).unwrap_or(FailureKind::Other)),
            run_error: self.run_error,
            last_at: self.last_at.map(time),
            interval_ms: self.interval_ms,
            down_after: self.down_after,
            up_after: self.up_after,
            quorum: self.quorum,
            seen_at: self.seen_at.map(time),
            pending: self.pending,
        }
    }

    /// The open incidents this track refers to, its conditions' included.
    fn open_ids(&self) -> impl Iterator<Item = uuid::Uuid> + '_ {
        let c = self.conditions.iter().flat_map(|c| [c.degraded.incident_id, c.cert.incident_id]);
        self.incident_id.into_iter().chain(c.flatten())
    }
}

/// A site's rows as read: its tracks decoded (none for a row a hand edit made unreadable, which
/// then starts afresh), in the order stored.
pub struct Stored {
    sites: Vec<(String, Vec<TrackRow>)>,
}

impl Stored {
    pub fn decode(rows: Vec<SiteRow>) -> Self {
        let sites = rows
            .into_iter()
            .map(|r| {
                let tracks = serde_json::from_str(&r.tracks).unwrap_or_else(|e| {
                    tracing::warn!(site = %r.site_id, error = %e, "unreadable incident tracks: the site starts afresh");
                    Vec::new()
                });
                (r.site_id, tracks)
            })
            .collect();
        Stored { sites }
    }

    /// The ids of the incidents the tracks have open (to read them).
    pub fn open_ids(&self) -> Vec<uuid::Uuid> {
        self.sites.iter().flat_map(|(_, ts)| ts.iter().flat_map(TrackRow::open_ids)).collect()
    }

    /// One [`SiteTracks`] per site that has tracks, joined with their open incidents.
    pub fn into_site_tracks(self, open: Vec<Incident>) -> Vec<SiteTracks> {
        let mut open: HashMap<uuid::Uuid, Incident> = open.into_iter().map(|i| (i.incident_id, i)).collect();
        let mut out = Vec::with_capacity(self.sites.len());
        for (site_id, rows) in self.sites {
            if rows.is_empty() {
                continue;
            }
            let mut s = SiteTracks::new(&site_id);
            for r in rows {
                let track = r.into_track(&mut open);
                if track.region.is_empty() {
                    s.site = track;
                } else {
                    s.regions.push(track);
                }
            }
            out.push(s);
        }
        out
    }
}

/// A site's tracks as written back: the row's JSON and the interval its regions say (the
/// longest; `status` reads it to tell a stale site).
pub struct Encoded<'a> {
    pub site_id: &'a str,
    pub interval_ms: Option<i64>,
    pub tracks: String,
}

/// The row a database stores for a site's tracks: its own first, then its regions by name.
pub fn encode(s: &SiteTracks) -> String {
    let mut regions: Vec<&Track> = s.regions.iter().collect();
    regions.sort_by(|a, b| a.region.cmp(&b.region));
    let rows: Vec<TrackRow> = std::iter::once(&s.site).chain(regions).map(TrackRow::of).collect();
    serde_json::to_string(&rows).expect("tracks serialize")
}

/// The sites to write back, encoded: those the fold changed or created, not every site read.
pub fn changed<'a>(before: &[SiteTracks], after: &'a [SiteTracks]) -> Vec<Encoded<'a>> {
    let stored: HashMap<&str, &SiteTracks> = before.iter().map(|s| (s.site_id.as_str(), s)).collect();
    after
        .iter()
        .filter(|s| stored.get(s.site_id.as_str()) != Some(s))
        .map(|s| Encoded {
            site_id: &s.site_id,
            interval_ms: s.regions.iter().filter_map(|t| t.interval_ms).max(),
            tracks: encode(s),
        })
        .collect()
}

/// What a fold derived, as metrics: results kept in the history only (late, or of a region past
/// the cap) and regions retired.
pub fn count(d: &Derived) {
    if d.ignored > 0 {
        metrics::counter!(crate::metric::INCIDENT_REGIONS_IGNORED).increment(d.ignored);
    }
    if d.late > 0 {
        metrics::counter!(crate::metric::INCIDENT_RESULTS_LATE).increment(d.late);
    }
    if d.retired > 0 {
        metrics::counter!(crate::metric::INCIDENT_REGIONS_RETIRED).increment(d.retired);
    }
}
