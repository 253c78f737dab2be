//! The incident derivation: what it remembers per region of a site and of the site as a whole
//! (`Track`, `SiteTracks`), and how a batch's new results fold into them. Per region,
//! `down_after` failures open an incident and `up_after` successes close it; the site as a whole
//! is down while a quorum of the regions that report are down.

use chrono::{DateTime, Utc};

use super::incident::{Derived, EventKind, Incident};
use super::{CheckResult, CheckStatus, DEFAULT_DOWN_AFTER, DEFAULT_UP_AFTER, FailureKind};

/// A region whose newest result is older than this many intervals counts as unknown.
pub const SILENT_INTERVALS: i64 = 3;
/// Regions tracked per site: results of further regions (only a client inventing labels makes
/// them) are kept in the history but judge nothing, so they cannot make every batch of the site
/// rewrite a growing number of tracks.
pub const MAX_REGIONS: usize = 64;

/// A threshold a record carries, as the tracks keep it.
fn clamp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What the derivation remembers of one region of a site (or, with region `""`, of the site as
/// a whole) between batches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Track {
    pub region: String,
    pub down: bool,
    /// The current run is of successes (`true`) or failures.
    pub run_up: bool,
    pub run_len: i32,
    pub run_start: Option<DateTime<Utc>>,
    /// First failure of the current failure run.
    pub run_kind: Option<FailureKind>,
    pub run_error: Option<String>,
    /// Newest result folded in; older ones arriving later are kept in the history only.
    pub last_at: Option<DateTime<Utc>>,
    pub interval_ms: Option<i64>,
    pub down_after: Option<i32>,
    pub up_after: Option<i32>,
    pub quorum: Option<i32>,
    /// The open incident.
    pub incident: Option<Incident>,
}

impl Track {
    pub fn new(region: &str) -> Self {
        Track { region: region.to_owned(), run_up: true, ..Track::default() }
    }

    fn down_after(&self) -> i32 {
        self.down_after.filter(|n| *n > 0).unwrap_or(DEFAULT_DOWN_AFTER as i32)
    }

    fn up_after(&self) -> i32 {
        self.up_after.filter(|n| *n > 0).unwrap_or(DEFAULT_UP_AFTER as i32)
    }

    /// Reporting at `now`: its newest result is at most [`SILENT_INTERVALS`] intervals old (a
    /// region without a known interval counts as reporting once it has reported).
    fn reporting(&self, now: DateTime<Utc>) -> bool {
        match (self.last_at, self.interval_ms.filter(|ms| *ms > 0)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(last), Some(ms)) => (now - last).num_milliseconds() <= ms.saturating_mul(SILENT_INTERVALS),
        }
    }

    /// Down with its incident open (a stored track that says down without one counts as up).
    fn is_down(&self) -> bool {
        self.down && self.incident.is_some()
    }
}

/// Every track of one site: the site-wide one and one per region, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteTracks {
    pub site_id: String,
    pub site: Track,
    pub regions: Vec<Track>,
}

impl SiteTracks {
    pub fn new(site_id: &str) -> Self {
        SiteTracks { site_id: site_id.to_owned(), site: Track::new(""), regions: Vec::new() }
    }

    /// Folds this site's results (new to the history, in any order) into its tracks. MISSED
    /// slots are skipped; a result not newer than its region's newest one folded is skipped too
    /// (it is in the history, but the past is not rewritten).
    pub fn fold<'a>(&mut self, results: impl IntoIterator<Item = &'a CheckResult>, out: &mut Derived) {
        let mut rs: Vec<&CheckResult> = results
            .into_iter()
            .filter(|r| r.status != CheckStatus::Missed && r.site_id == self.site_id)
            .collect();
        rs.sort_by(|a, b| (a.scheduled_at, &a.region).cmp(&(b.scheduled_at, &b.region)));
        for r in rs {
            let i = match self.regions.iter().position(|t| t.region == r.region) {
                Some(i) => i,
                None if self.regions.len() >= MAX_REGIONS => {
                    out.ignored += 1;
                    continue;
                }
                None => {
                    self.regions.push(Track::new(&r.region));
                    self.regions.len() - 1
                }
            };
            if self.regions[i].last_at.is_some_and(|last| r.scheduled_at <= last) {
                continue;
            }
            let site_id = self.site_id.clone();
            let closed_at = fold_region(&site_id, &mut self.regions[i], r, out);
            if let Some(inc) = self.site.incident.as_mut()
                && r.status == CheckStatus::Failure
                && r.scheduled_at >= inc.started_at
            {
                inc.failed_checks += 1;
                out.touch(inc);
            }
            // (The site's own track keeps no time of its own: written only when its state or
            // quorum changes, it is not rewritten for every result.)
            // A v3 record (it has an interval) says the quorum, none meaning a majority; an older
            // one says nothing, and the last known stays.
            if r.interval_ms.is_some() {
                self.site.quorum = r.quorum.map(clamp);
            }
            self.judge(r, closed_at, out);
        }
    }

    /// The site as a whole at `r.scheduled_at`: down while a quorum of the reporting regions is
    /// down (default a majority of them; a region that went silent is not counted as up).
    fn judge(&mut self, r: &CheckResult, closed_at: Option<DateTime<Utc>>, out: &mut Derived) {
        let now = r.scheduled_at;
        // Unknown is not up: while the site is down, a down region that went silent still counts
        // as down (only a recovery closes the incident); a silent region that was up counts as
        // neither.
        let open = self.site.incident.is_some();
        let counted: Vec<&Track> =
            self.regions.iter().filter(|t| t.reporting(now) || (open && t.is_down())).collect();
        if counted.is_empty() {
            return;
        }
        let down: Vec<&Track> = counted.iter().copied().filter(|t| t.is_down()).collect();
        let quorum = match self.site.quorum.filter(|q| *q > 0) {
            Some(q) => q as usize,
            None => counted.len() / 2 + 1,
        };
        let is_down = down.len() >= quorum;
        match (&mut self.site.incident, is_down) {
            (None, true) => {
                // Down since the moment `quorum` of them were failing: the quorum-th earliest start.
                let mut down: Vec<&Incident> = down.iter().filter_map(|t| t.incident.as_ref()).collect();
                down.sort_by_key(|i| i.started_at);
                let (first, started_at) = (down[0], down[quorum - 1].started_at);
                let mut regions: Vec<String> = down.iter().filter_map(|i| i.region.clone()).collect();
                regions.sort();
                let incident = Incident {
                    // With the confirmation in the id: the site may close while its regions'
                    // incidents stay open (a region appeared, the quorum changed), then open again
                    // from the same start.
                    incident_id: Incident::site_id_for(&self.site_id, started_at, now),
                    site_id: self.site_id.clone(),
                    region: None,
                    url: r.url.clone(),
                    started_at,
                    confirmed_at: now,
                    ended_at: None,
                    regions,
                    failure_kind: first.failure_kind,
                    error: first.error.clone(),
                    failed_checks: down.iter().map(|i| i.failed_checks).sum(),
                };
                out.event(EventKind::Opened, now, &incident);
                self.site.incident = Some(incident);
                self.site.down = true;
            }
            (Some(inc), true) => {
                let before = inc.regions.len();
                for t in &down {
                    if !inc.regions.contains(&t.region) {
                        inc.regions.push(t.region.clone());
                    }
                }
                if inc.regions.len() != before {
                    inc.regions.sort();
                    out.touch(inc);
                }
            }
            (Some(inc), false) => {
                inc.ended_at = Some(closed_at.unwrap_or(now).max(inc.started_at));
                let inc = inc.clone();
                out.event(EventKind::Closed, now, &inc);
                self.site.incident = None;
                self.site.down = false;
            }
            (None, false) => {}
        }
    }
}

/// Folds a batch's new results into the tracks of their sites (`tracks`: those stored, in any
/// order; a site without one gets a fresh one, appended). Results of one site fold in time order.
pub fn derive_incidents(tracks: &mut Vec<SiteTracks>, results: &[&CheckResult]) -> Derived {
    let mut by_site: Vec<&CheckResult> =
        results.iter().copied().filter(|r| r.status != CheckStatus::Missed).collect();
    by_site.sort_by(|a, b| a.site_id.cmp(&b.site_id));
    let mut out = Derived::default();
    let mut index: std::collections::HashMap<String, usize> =
        tracks.iter().enumerate().map(|(i, t)| (t.site_id.clone(), i)).collect();
    for group in by_site.chunk_by(|a, b| a.site_id == b.site_id) {
        let site = &group[0].site_id;
        let i = *index.entry(site.clone()).or_insert_with(|| {
            tracks.push(SiteTracks::new(site));
            tracks.len() - 1
        });
        tracks[i].fold(group.iter().copied(), &mut out);
    }
    out
}

/// One result into its region's track; returns the end of the incident it closed, if any.
fn fold_region(site_id: &str, t: &mut Track, r: &CheckResult, out: &mut Derived) -> Option<DateTime<Utc>> {
    let now = r.scheduled_at;
    t.last_at = Some(now);
    t.interval_ms = r.interval_ms.map(i64::from).or(t.interval_ms);
    t.down_after = r.down_after.map(clamp).or(t.down_after);
    t.up_after = r.up_after.map(clamp).or(t.up_after);
    let up = r.status == CheckStatus::Success;
    if up == t.run_up && t.run_len > 0 {
        t.run_len = t.run_len.saturating_add(1);
    } else {
        t.run_up = up;
        t.run_len = 1;
        t.run_start = Some(now);
        (t.run_kind, t.run_error) = if up { (None, None) } else { (r.failure_kind, r.error.clone()) };
    }
    if up {
        if t.down && t.run_len >= t.up_after() {
            t.down = false;
            // (A stored track that is down without its incident has nothing to close.)
            if let Some(mut inc) = t.incident.take() {
                let end = t.run_start.unwrap_or(now);
                inc.ended_at = Some(end);
                out.event(EventKind::Closed, now, &inc);
                return Some(end);
            }
        }
    } else if let Some(inc) = t.incident.as_mut() {
        inc.failed_checks += 1;
        out.touch(inc);
    } else if t.run_len >= t.down_after() {
        let started_at = t.run_start.unwrap_or(now);
        let incident = Incident {
            incident_id: Incident::id_for(site_id, Some(&t.region), started_at),
            site_id: site_id.to_owned(),
            region: Some(t.region.clone()),
            url: r.url.clone(),
            started_at,
            confirmed_at: now,
            ended_at: None,
            regions: vec![t.region.clone()],
            failure_kind: t.run_kind,
            error: t.run_error.clone(),
            failed_checks: i64::from(t.run_len),
        };
        out.event(EventKind::Opened, now, &incident);
        t.incident = Some(incident);
        t.down = true;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IncidentEvent;
    use chrono::TimeZone;
    use uuid::Uuid;

    const T0: i64 = 1_800_000_000;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(T0 + s, 0).unwrap()
    }

    /// `pattern`: one char per slot at 10 s spacing: `+` success, `x` failure, `m` missed.
    fn results(region: &str, pattern: &str, f: impl Fn(&mut CheckResult)) -> Vec<CheckResult> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let t = at(i as i64 * 10);
                let status = match c {
                    '+' => CheckStatus::Success,
                    'x' => CheckStatus::Failure,
                    _ => CheckStatus::Missed,
                };
                let mut r = CheckResult::new("s", "http://s/", region, t, t, status);
                if c == 'x' {
                    r.fail(FailureKind::Connect, format!("refused at {i}"));
                }
                r.interval_ms = Some(10_000);
                f(&mut r);
                r
            })
            .collect()
    }

    fn fold(rs: &[CheckResult]) -> (SiteTracks, Derived) {
        let mut tracks = SiteTracks::new("s");
        let mut out = Derived::default();
        tracks.fold(rs, &mut out);
        (tracks, out)
    }

    fn kinds(d: &Derived) -> Vec<(EventKind, Option<&str>, i64)> {
        d.events
            .iter()
            .map(|e| (e.kind, e.incident.region.as_deref(), (e.at.timestamp() - T0) / 10))
            .collect()
    }

    #[test]
    fn down_after_failures_open_and_up_after_successes_close() {
        let rs = results("eu", "+xx+xxxmx++", |r| {
            r.down_after = Some(3);
            r.up_after = Some(2);
        });
        let (t, d) = fold(&rs);
        use EventKind::*;
        assert_eq!(
            kinds(&d),
            vec![(Opened, Some("eu"), 6), (Opened, None, 6), (Closed, Some("eu"), 10), (Closed, None, 10)]
        );
        let region = d.incidents.iter().find(|i| i.region.is_some()).unwrap();
        assert_eq!((region.started_at, region.confirmed_at, region.ended_at), (at(40), at(60), Some(at(90))));
        assert_eq!(region.failed_checks, 4, "x at 4, 5, 6 and 8; the MISSED slot is neither");
        assert_eq!(region.error.as_deref(), Some("refused at 4"));
        assert_eq!(region.failure_kind, Some(FailureKind::Connect));
        let site = d.incidents.iter().find(|i| i.region.is_none()).unwrap();
        assert_eq!((site.started_at, site.ended_at, site.failed_checks), (at(40), Some(at(90)), 4));
        assert!(!t.site.down && t.site.incident.is_none());
    }

    #[test]
    fn defaults_are_three_failures_and_one_success() {
        let (_, d) = fold(&results("eu", "xx+xx+", |_| {}));
        assert!(d.events.is_empty(), "two failures are not an outage: {d:?}");
        let (_, d) = fold(&results("eu", "xxx+", |_| {}));
        assert_eq!(d.events.len(), 4);
    }

    #[test]
    fn one_region_of_three_opens_no_site_incident_two_do() {
        let mut rs = results("eu", "++xxxxxx++", |_| {});
        rs.extend(results("us", "++++++++++", |_| {}));
        rs.extend(results("ap", "++++++++++", |_| {}));
        let (_, d) = fold(&rs);
        assert!(d.incidents.iter().all(|i| i.region.is_some()), "{d:?}");
        assert_eq!(d.incidents.len(), 1);

        let mut rs = results("eu", "++xxxxxx++", |_| {});
        rs.extend(results("us", "+++xxxxx++", |_| {}));
        rs.extend(results("ap", "++++++++++", |_| {}));
        let (_, d) = fold(&rs);
        let site: Vec<&Incident> = d.incidents.iter().filter(|i| i.region.is_none()).collect();
        assert_eq!(site.len(), 1, "{d:?}");
        let site = site[0];
        assert_eq!(site.regions, vec!["eu".to_owned(), "us".to_owned()]);
        assert_eq!(site.started_at, at(30), "down since both were failing");
        assert_eq!(site.confirmed_at, at(50), "us confirmed at its third failure");
        assert_eq!(site.ended_at, Some(at(80)));
    }

    #[test]
    fn a_quorum_override_and_a_silent_region() {
        // quorum 1: one region is enough.
        let mut rs = results("eu", "xxx+", |r| r.quorum = Some(1));
        rs.extend(results("us", "++++", |r| r.quorum = Some(1)));
        let (_, d) = fold(&rs);
        assert_eq!(d.incidents.iter().filter(|i| i.region.is_none()).count(), 1);

        // us stops reporting after its first result: from 3 intervals on it is unknown, not up,
        // so eu alone is the majority of the regions that report.
        let mut rs = results("eu", "xxxxxx+", |_| {});
        rs.extend(results("us", "+", |_| {}));
        let (_, d) = fold(&rs);
        let site = d.incidents.iter().find(|i| i.region.is_none()).expect("site incident");
        assert_eq!(site.confirmed_at, at(40), "us went silent after 3 intervals");
        assert_eq!(site.regions, vec!["eu".to_owned()]);
    }

    #[test]
    fn a_down_region_that_goes_silent_keeps_the_site_down_until_a_recovery() {
        // eu and us fail from the start, ap is up; eu's producer stops after slot 4 (its results
        // end): unknown is not up, so the site stays down until us recovers at slot 12.
        let mut rs = results("eu", "xxxxx", |_| {});
        rs.extend(results("us", "xxxxxxxxxxxx+", |_| {}));
        rs.extend(results("ap", "+++++++++++++", |_| {}));
        rs.sort_by(|a, b| (a.scheduled_at, &a.region).cmp(&(b.scheduled_at, &b.region)));
        let (_, d) = fold(&rs);
        let site: Vec<(EventKind, i64)> = d
            .events
            .iter()
            .filter(|e| e.incident.region.is_none())
            .map(|e| (e.kind, (e.at.timestamp() - T0) / 10))
            .collect();
        assert_eq!(site, vec![(EventKind::Opened, 2), (EventKind::Closed, 12)], "{d:?}");
    }

    #[test]
    fn a_site_that_closes_and_opens_again_from_the_same_start_gets_a_new_incident() {
        // eu fails throughout. quorum 1 opens the site incident; the config then drops the
        // override (a majority of eu, us: 2), which closes it; put back, it opens again: the
        // same start, so the confirmation keeps the ids apart.
        let quorum = |k: usize| if (4..7).contains(&k) { None } else { Some(1) };
        let mut rs = results("eu", "xxxxxxxxxx", |_| {});
        rs.extend(results("us", "++++++++++", |_| {}));
        for r in rs.iter_mut() {
            r.quorum = quorum(((r.scheduled_at.timestamp() - T0) / 10) as usize);
        }
        rs.sort_by(|a, b| (a.scheduled_at, &a.region).cmp(&(b.scheduled_at, &b.region)));
        let (_, d) = fold(&rs);
        let site: Vec<&IncidentEvent> = d.events.iter().filter(|e| e.incident.region.is_none()).collect();
        let kinds: Vec<EventKind> = site.iter().map(|e| e.kind).collect();
        use EventKind::*;
        assert_eq!(kinds, vec![Opened, Closed, Opened], "{d:?}");
        assert_eq!(site[0].incident.started_at, site[2].incident.started_at);
        assert_ne!(site[0].incident.incident_id, site[2].incident.incident_id);
        let mut ids: Vec<Uuid> = d.events.iter().map(|e| e.event_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), d.events.len(), "every event its own id");
    }

    #[test]
    fn odd_tracks_and_invented_regions_do_not_break_the_fold() {
        // A track stored as down without its incident: a success only clears it.
        let mut t = SiteTracks::new("s");
        t.regions.push(Track { down: true, ..Track::new("eu") });
        let mut d = Derived::default();
        t.fold(&results("eu", "+", |_| {}), &mut d);
        assert!(d.events.is_empty() && !t.regions[0].down);
        // Interval 0 and thresholds past i32 are read as unknown and as large.
        let (t, _) = fold(&results("eu", "xx", |r| {
            (r.interval_ms, r.down_after) = (Some(0), Some(u32::MAX));
        }));
        assert_eq!(t.regions[0].down_after, Some(i32::MAX));
        // More regions than MAX_REGIONS: the rest judge nothing.
        let mut rs = Vec::new();
        for i in 0..MAX_REGIONS + 6 {
            rs.extend(results(&format!("r{i}"), "x", |_| {}));
        }
        let (t, d) = fold(&rs);
        assert_eq!((t.regions.len(), d.ignored), (MAX_REGIONS, 6));
    }

    #[test]
    fn folding_in_pieces_or_again_gives_the_same_incidents_and_event_ids() {
        let mut rs = results("eu", "++xxxxxx++xxx+", |_| {});
        rs.extend(results("us", "+++xxxxx++x+xx", |_| {}));
        // As a partition holds them: in the order they were checked.
        rs.sort_by(|a, b| (a.scheduled_at, &a.region).cmp(&(b.scheduled_at, &b.region)));
        let (whole_t, whole) = fold(&rs);
        for cut in [1, 5, 9, 17, 27] {
            let mut t = SiteTracks::new("s");
            let mut d = Derived::default();
            t.fold(&rs[..cut], &mut d);
            t.fold(&rs[cut..], &mut d);
            // The same results again (a replay): nothing more.
            let before = d.events.len();
            t.fold(&rs, &mut d);
            assert_eq!(d.events.len(), before, "a replay derives nothing");
            let ids = |d: &Derived| {
                let mut v: Vec<Uuid> = d.events.iter().map(|e| e.event_id).collect();
                v.sort();
                v
            };
            assert_eq!(ids(&d), ids(&whole), "cut at {cut}");
            assert_eq!(t, whole_t, "cut at {cut}");
        }
    }
}
