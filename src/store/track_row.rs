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
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient")]
    pending: Vec<Sample>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    conditions: Option<ConditionsRow>,
}

/// Waiting results or conditions that do not read (only a hand edit makes them) are dropped,
/// not the track: its open incident stays known.
fn lenient<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned + Default>(
    d: D,
) -> Result<T, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
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

/// The sites' rows as read: their tracks decoded, in the order stored. A track a hand edit made
/// unreadable starts afresh; the others are kept.
pub struct Stored {
    sites: Vec<(String, Vec<TrackRow>)>,
}

impl Stored {
    pub fn decode(rows: Vec<SiteRow>) -> Self {
        let sites = rows
            .into_iter()
            .map(|r| {
                let tracks = decode_tracks(&r);
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

/// A site's tracks as written back: the row's JSON.
pub struct Encoded<'a> {
    pub site_id: &'a str,
    pub tracks: String,
}

fn decode_tracks(r: &SiteRow) -> Vec<TrackRow> {
    let unreadable = |what: &str, e: &serde_json::Error| {
        tracing::warn!(site = %r.site_id, error = %e, "unreadable incident {what}: it starts afresh");
    };
    let values: Vec<serde_json::Value> = serde_json::from_str(&r.tracks).unwrap_or_else(|e| {
        unreadable("tracks", &e);
        Vec::new()
    });
    values
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).map_err(|e| unreadable("track", &e)).ok())
        .collect()
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
        .map(|s| Encoded { site_id: &s.site_id, tracks: encode(s) })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tracks: &str) -> SiteRow {
        SiteRow { site_id: "s".into(), tracks: tracks.into() }
    }

    #[test]
    fn a_site_round_trips_through_its_row() {
        let mut s = SiteTracks::new("s");
        s.site.last_at = DateTime::from_timestamp_micros(1_700_000_000_123_456);
        let mut eu = Track::new("eu");
        (eu.down, eu.run_len, eu.interval_ms) = (true, 3, Some(60_000));
        s.regions = vec![Track::new("us"), eu];
        let decoded = Stored::decode(vec![row(&encode(&s))]).into_site_tracks(Vec::new());
        let mut want = s.clone();
        want.regions.sort_by(|a, b| a.region.cmp(&b.region));
        assert_eq!(decoded, [want], "regions come back by name");
    }

    #[test]
    fn what_does_not_read_is_dropped_alone() {
        let id = "13737508-6fb6-583d-8176-dc562c533087";
        // The site's own track with waiting results that are not samples and conditions that are
        // a string; eu's track with its open incident; a track that is not one at all.
        let text = format!(
            r#"[{{"region":"","down":false,"run_up":true,"run_len":0,"pending":{{"x":1}},"conditions":"no"}},
                {{"region":"eu","down":true,"run_up":false,"run_len":3,"incident_id":"{id}","pending":null}},
                {{"region":7}}]"#
        );
        let stored = Stored::decode(vec![row(&text)]);
        assert_eq!(stored.open_ids(), [id.parse::<uuid::Uuid>().unwrap()], "eu's incident stays known");
        let sites = stored.into_site_tracks(Vec::new());
        assert_eq!(sites[0].regions.len(), 1);
        assert!(sites[0].regions[0].down && sites[0].site.pending.is_empty());
        assert!(Stored::decode(vec![row("not json")]).into_site_tracks(Vec::new()).is_empty());
    }
}
