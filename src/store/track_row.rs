//! The `incident_tracks` rows as both databases return them (times as µs since the epoch, ids as
//! text), joined in memory with their open incidents into the domain's [`Track`]s; the SQL that
//! selects tracks and incidents in each database's dialect.

use chrono::{DateTime, Utc};

use crate::domain::{Condition, Derived, FailureKind, Incident, SiteTracks, Track};

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// An `incident_tracks` row; its open incident is read apart, by id.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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
    incident_id: Option<String>,
    seen_at: Option<i64>,
    pending: Option<String>,
    conditions: Option<String>,
}

/// A site's DEGRADED and CERT_EXPIRING conditions as `incident_tracks.conditions` keeps them.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ConditionsRow {
    #[serde(default)]
    degraded: ConditionRow,
    #[serde(default)]
    cert: ConditionRow,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
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

    fn into_condition(self, open: &mut std::collections::HashMap<String, Incident>) -> Condition {
        let incident = self.incident_id.and_then(|id| open.remove(&id.to_string()));
        Condition { run: self.run, since: self.since, incident }
    }
}

impl TrackRow {
    /// The row a database stores for `site`'s track `t` (what the dialects bind, as one value).
    #[cfg(test)]
    pub fn of(site: &str, t: &Track) -> Self {
        let us = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
        TrackRow {
            site_id: site.to_owned(),
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
            incident_id: t.incident.as_ref().map(|i| i.incident_id.to_string()),
            seen_at: us(t.seen_at),
            pending: pending_json(t),
            conditions: conditions_json(t),
        }
    }

    /// (Unreadable conditions, which only a hand-edited row has, start afresh.)
    fn conditions(&self) -> ConditionsRow {
        self.conditions.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default()
    }
}

/// The SQL that selects these rows in each database's dialect: `time` turns a column into µs,
/// `id` a uuid into text, `regions` the regions into a JSON array's text.
pub struct Dialect {
    pub time: fn(&str) -> String,
    pub id: fn(&str) -> String,
    pub regions: fn(&str) -> String,
}

impl Dialect {
    /// The columns of a [`TrackRow`] from `incident_tracks`.
    pub fn track_columns(&self) -> String {
        let Dialect { time, id, .. } = self;
        format!(
            "site_id, region, down, run_up, run_len, {} AS run_start, run_kind, run_error, {} AS last_at, \
             interval_ms, down_after, up_after, quorum, {} AS incident_id, {} AS seen_at, pending, conditions",
            time("run_start"),
            time("last_at"),
            id("incident_id"),
            time("seen_at"),
        )
    }

    /// The columns of an `IncidentRow` from `incidents`.
    pub fn incident_columns(&self) -> String {
        let Dialect { time, id, regions } = self;
        format!(
            "{} AS incident_id, site_id, region, url, {} AS started_at, {} AS confirmed_at, \
             {} AS ended_at, {} AS regions, failure_kind, error, failed_checks, end_reason, incident_kind",
            id("incident_id"),
            time("started_at"),
            time("confirmed_at"),
            time("ended_at"),
            regions("regions"),
        )
    }
}

/// The ids of the incidents the tracks have open (to read them), the conditions' included.
pub fn open_ids(rows: &[TrackRow]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| {
            let c = r.conditions();
            let conditions = [c.degraded.incident_id, c.cert.incident_id].into_iter().flatten();
            r.incident_id.clone().into_iter().chain(conditions.map(|id| id.to_string()))
        })
        .collect()
}

/// A track's conditions as stored (`None` when there is nothing to remember).
pub fn conditions_json(t: &Track) -> Option<String> {
    let row = ConditionsRow { degraded: ConditionRow::of(&t.degraded), cert: ConditionRow::of(&t.cert) };
    (t.degraded != Condition::default() || t.cert != Condition::default())
        .then(|| serde_json::to_string(&row).expect("conditions serialize"))
}

/// Rows ordered by site (and region) with their open incidents → one [`SiteTracks`] per site;
/// region `""` is the site's own.
pub fn site_tracks(rows: Vec<TrackRow>, open: Vec<Incident>) -> Vec<SiteTracks> {
    let mut open: std::collections::HashMap<String, Incident> =
        open.into_iter().map(|i| (i.incident_id.to_string(), i)).collect();
    let mut out: Vec<SiteTracks> = Vec::new();
    for r in rows {
        let conditions = r.conditions();
        let track = Track {
            degraded: conditions.degraded.into_condition(&mut open),
            cert: conditions.cert.into_condition(&mut open),
            incident: r.incident_id.as_ref().and_then(|id| open.remove(id)),
            region: r.region,
            down: r.down,
            run_up: r.run_up,
            run_len: r.run_len,
            run_start: r.run_start.map(time),
            run_kind: r.run_kind.map(|k| FailureKind::parse(&k).unwrap_or(FailureKind::Other)),
            run_error: r.run_error,
            last_at: r.last_at.map(time),
            interval_ms: r.interval_ms,
            down_after: r.down_after,
            up_after: r.up_after,
            quorum: r.quorum,
            seen_at: r.seen_at.map(time),
            // (Unreadable waiting results, which only a hand-edited row has, are dropped.)
            pending: r.pending.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default(),
        };
        if out.last().is_none_or(|s| s.site_id != r.site_id) {
            out.push(SiteTracks::new(&r.site_id));
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

/// The region tracks the fold retired: stored before, gone after (to delete).
pub fn removed(before: &[SiteTracks], after: &[SiteTracks]) -> (Vec<String>, Vec<String>) {
    let kept: std::collections::HashSet<(&str, &str)> =
        flatten(after).map(|(site, t)| (site, t.region.as_str())).collect();
    flatten(before)
        .filter(|(site, t)| !t.region.is_empty() && !kept.contains(&(*site, t.region.as_str())))
        .map(|(site, t)| (site.to_owned(), t.region.clone()))
        .unzip()
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

/// A track's waiting results as stored (`None` when there are none).
pub fn pending_json(t: &Track) -> Option<String> {
    (!t.pending.is_empty()).then(|| serde_json::to_string(&t.pending).expect("samples serialize"))
}

/// The tracks to write back: those the fold changed or created, not every track of the sites.
pub fn changed<'a>(before: &[SiteTracks], after: &'a [SiteTracks]) -> Vec<(&'a str, &'a Track)> {
    let stored: std::collections::HashMap<(&str, &str), &Track> =
        flatten(before).map(|(site, t)| ((site, t.region.as_str()), t)).collect();
    flatten(after).filter(|(site, t)| stored.get(&(*site, t.region.as_str())) != Some(t)).collect()
}
