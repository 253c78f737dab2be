//! The `incident_tracks` rows as both databases return them, each with its open incident (times
//! as µs since the epoch, ids as text, regions as a JSON array), and their conversion to the
//! domain's [`Track`]; the SQL that selects them in each database's dialect.

use chrono::{DateTime, Utc};

use crate::domain::{FailureKind, Incident, SiteTracks, Track};

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// An `incident_tracks` row with its open incident, if any.
#[derive(Debug, sqlx::FromRow)]
pub struct TrackRow {
    site_id: String,
    region: String,
    down: bool,
    run_up: bool,
    run_len: i32,
    run_start: Option<i64>,
    run_kind: Option<String>,
    run_error: Option<String>,
    last_at: Option<i64>,
    interval_ms: Option<i64>,
    down_after: Option<i32>,
    up_after: Option<i32>,
    quorum: Option<i32>,
    #[sqlx(flatten)]
    incident: OpenIncident,
}

/// The joined incident's columns (all null when none is open).
#[derive(Debug, sqlx::FromRow)]
struct OpenIncident {
    i_incident_id: Option<String>,
    i_url: Option<String>,
    i_started_at: Option<i64>,
    i_confirmed_at: Option<i64>,
    i_regions: Option<String>,
    i_failure_kind: Option<String>,
    i_error: Option<String>,
    i_failed_checks: Option<i64>,
}

/// The columns of [`TrackRow`], for a `SELECT … FROM incident_tracks t LEFT JOIN incidents i
/// ON i.incident_id = t.incident_id`, in each database's dialect: `time` turns a column into
/// µs, `id` a uuid into text, `regions` the regions into a JSON array's text.
pub struct Dialect {
    pub time: fn(&str) -> String,
    pub id: fn(&str) -> String,
    pub regions: fn(&str) -> String,
}

impl Dialect {
    pub fn track_columns(&self) -> String {
        let Dialect { time, id, regions } = self;
        format!(
            "t.site_id, t.region, t.down, t.run_up, t.run_len, {} AS run_start, t.run_kind, t.run_error, \
             {} AS last_at, t.interval_ms, t.down_after, t.up_after, t.quorum, \
             {} AS i_incident_id, i.url AS i_url, {} AS i_started_at, {} AS i_confirmed_at, \
             {} AS i_regions, i.failure_kind AS i_failure_kind, i.error AS i_error, \
             i.failed_checks AS i_failed_checks",
            time("t.run_start"),
            time("t.last_at"),
            id("i.incident_id"),
            time("i.started_at"),
            time("i.confirmed_at"),
            regions("i.regions"),
        )
    }

    /// The columns of an `IncidentRow` from `incidents`.
    pub fn incident_columns(&self) -> String {
        let Dialect { time, id, regions } = self;
        format!(
            "{} AS incident_id, site_id, region, url, {} AS started_at, {} AS confirmed_at, \
             {} AS ended_at, {} AS regions, failure_kind, error, failed_checks",
            id("incident_id"),
            time("started_at"),
            time("confirmed_at"),
            time("ended_at"),
            regions("regions"),
        )
    }
}

impl TrackRow {
    fn into_track(self) -> (String, Track) {
        let o = self.incident;
        let incident = o.i_incident_id.map(|id| Incident {
            incident_id: id.parse().unwrap_or_default(),
            site_id: self.site_id.clone(),
            region: (!self.region.is_empty()).then(|| self.region.clone()),
            url: o.i_url.unwrap_or_default(),
            started_at: time(o.i_started_at.unwrap_or_default()),
            confirmed_at: time(o.i_confirmed_at.unwrap_or_default()),
            ended_at: None,
            regions: o.i_regions.and_then(|r| serde_json::from_str(&r).ok()).unwrap_or_default(),
            failure_kind: o.i_failure_kind.map(|k| FailureKind::parse(&k).unwrap_or(FailureKind::Other)),
            error: o.i_error,
            failed_checks: o.i_failed_checks.unwrap_or_default(),
        });
        let track = Track {
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
            incident,
        };
        (self.site_id, track)
    }
}

/// Rows ordered by site (and region) → one [`SiteTracks`] per site; region `""` is the site's own.
pub fn site_tracks(rows: Vec<TrackRow>) -> Vec<SiteTracks> {
    let mut out: Vec<SiteTracks> = Vec::new();
    for row in rows {
        let (site, track) = row.into_track();
        if out.last().is_none_or(|s| s.site_id != site) {
            out.push(SiteTracks::new(&site));
        }
        let s = out.last_mut().expect("pushed above");
        if track.region.is_empty() {
            s.site = track;
        } else {
            s.regions.push(track);
        }
    }
    out
}

/// Every track of the sites: the site's own first (region `""`).
fn flatten(sites: &[SiteTracks]) -> impl Iterator<Item = (&str, &Track)> {
    sites
        .iter()
        .flat_map(|s| std::iter::once(&s.site).chain(&s.regions).map(move |t| (s.site_id.as_str(), t)))
}

/// The tracks to write back: those the fold changed or created, not every track of the sites.
pub fn changed<'a>(before: &[SiteTracks], after: &'a [SiteTracks]) -> Vec<(&'a str, &'a Track)> {
    let stored: std::collections::HashMap<(&str, &str), &Track> =
        flatten(before).map(|(site, t)| ((site, t.region.as_str()), t)).collect();
    flatten(after).filter(|(site, t)| stored.get(&(*site, t.region.as_str())) != Some(t)).collect()
}
