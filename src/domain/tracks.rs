//! The incident derivation: what it remembers per region of a site and of the site as a whole
//! (`Track`, `SiteTracks`), and how results fold into them. Results are judged slot by slot in
//! `scheduled_at` order, each slot once, when every live region reported it or it fell behind the
//! site's watermark, so the verdict depends on the results, not on how they were batched.
//!
//! Per region, `down_after` failures open an incident and `up_after` successes close it; the site
//! as a whole is down while a quorum of the regions that report are down. A region silent for the
//! expiry is retired: it stops counting and its incident closes as retired.

use chrono::{DateTime, TimeDelta, Utc};

use super::conditions::{self, Condition};
use super::incident::{Derived, EndReason, EventKind, Incident, IncidentKind};
pub use super::judging::{Judging, Sample};
use super::{CheckResult, CheckStatus, DEFAULT_DOWN_AFTER, DEFAULT_UP_AFTER, FailureKind};

/// A region whose newest result is older than this many intervals counts as unknown (not up).
pub const SILENT_INTERVALS: i64 = 3;
/// Regions tracked per site at once. A new label past it takes the place of the least recently
/// heard silent region (retired); only while all of them are live is it kept in the history only.
pub const MAX_REGIONS: usize = 64;
/// The interval assumed for results that do not say theirs (schema v1/v2).
const DEFAULT_INTERVAL_MS: i64 = 60_000;

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
    /// A region: the start of its current run. The site: the end of its last incident (the next
    /// one never starts before it).
    pub run_start: Option<DateTime<Utc>>,
    /// First failure of the current failure run.
    pub run_kind: Option<FailureKind>,
    pub run_error: Option<String>,
    /// A region: its newest result judged. The site: the newest slot judged (results of a slot
    /// up to it that arrive later are history only).
    pub last_at: Option<DateTime<Utc>>,
    /// A region: its newest result received (MISSED included), judged or waiting.
    pub seen_at: Option<DateTime<Utc>>,
    pub interval_ms: Option<i64>,
    pub down_after: Option<i32>,
    pub up_after: Option<i32>,
    pub quorum: Option<i32>,
    /// The open incident.
    pub incident: Option<Incident>,
    /// The site: results received whose slot is not judged yet, in (`at`, region) order.
    pub pending: Vec<Sample>,
    /// The site: its DEGRADED and CERT_EXPIRING conditions.
    pub degraded: Condition,
    pub cert: Condition,
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

    fn interval(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.interval_ms.filter(|ms| *ms > 0).unwrap_or(DEFAULT_INTERVAL_MS))
    }

    /// How long this region may stay quiet before it is unknown.
    fn silence(&self) -> TimeDelta {
        self.interval() * SILENT_INTERVALS as i32
    }

    /// Its newest judged result is at most [`SILENT_INTERVALS`] intervals before `now`.
    fn reporting(&self, now: DateTime<Utc>) -> bool {
        self.last_at.is_some_and(|last| now - last <= self.silence())
    }

    /// A slot at `t` waits for this region: it has not sent anything for `t` or later yet, and it
    /// was heard within its silence before the site's last judged slot `judged` (it is current).
    fn awaited(&self, t: DateTime<Utc>, judged: Option<DateTime<Utc>>) -> bool {
        self.seen_at.is_some_and(|seen| seen < t && judged.is_none_or(|j| j - seen <= self.silence()))
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

    /// Folds this site's results (new to the history) in the order they arrived: each is kept
    /// until its slot is judged; a slot is judged, in `scheduled_at` order, as soon as it can be.
    pub fn fold<'a>(
        &mut self,
        results: impl IntoIterator<Item = &'a CheckResult>,
        j: &Judging,
        out: &mut Derived,
    ) {
        for r in results {
            if r.site_id == self.site_id {
                self.receive(r, out);
                self.settle(j, out);
            }
        }
    }

    /// One result: its region heard from, and the result kept for its slot (or, if the slot was
    /// judged already, counted as late: history only).
    fn receive(&mut self, r: &CheckResult, out: &mut Derived) {
        let at = r.scheduled_at;
        let Some(i) = self.region_index(&r.region, at, out) else {
            out.ignored += 1;
            return;
        };
        let t = &mut self.regions[i];
        t.seen_at = t.seen_at.max(Some(at));
        t.interval_ms = r.interval_ms.map(i64::from).or(t.interval_ms);
        if self.site.last_at.is_some_and(|judged| at <= judged) {
            out.late += 1;
            // It still says its region is alive from then on, as it would had it come in time
            // (a region's first result only makes it known; see `judge`).
            if r.status != CheckStatus::Missed && t.last_at.is_none_or(|last| at > last) {
                t.last_at = Some(at);
                remember_thresholds(t, &Sample::from(r));
            }
            return;
        }
        if r.status == CheckStatus::Missed {
            return;
        }
        let s = Sample::from(r);
        let pos = self.site.pending.partition_point(|p| (p.at, &p.region) < (s.at, &s.region));
        if self.site.pending.get(pos).is_some_and(|p| p.at == s.at && p.region == s.region) {
            return; // (another result of the same region and slot: not a sitemon producer's)
        }
        self.site.pending.insert(pos, s);
    }

    /// The region's track, made if new; a new one past [`MAX_REGIONS`] replaces the least recently
    /// heard region that is silent at `at` and has nothing waiting (none: `None`).
    fn region_index(&mut self, region: &str, at: DateTime<Utc>, out: &mut Derived) -> Option<usize> {
        if let Some(i) = self.regions.iter().position(|t| t.region == region) {
            return Some(i);
        }
        if self.regions.len() >= MAX_REGIONS {
            let victim = self
                .regions
                .iter()
                .filter(|t| t.seen_at.is_none_or(|seen| at - seen > t.silence()))
                .filter(|t| !self.site.pending.iter().any(|p| p.region == t.region))
                .min_by(|a, b| (a.seen_at, &a.region).cmp(&(b.seen_at, &b.region)))?
                .region
                .clone();
            self.retire(&victim, at, out);
        }
        self.regions.push(Track::new(region));
        Some(self.regions.len() - 1)
    }

    /// Judges every waiting slot that can be judged, oldest first: once no current region still
    /// owes it a result, if it is within [`SILENT_INTERVALS`] intervals of the last slot judged or
    /// later results already went that far past it; and any slot once the site's newest result
    /// is `max_skew` and those intervals past it. So a slot far ahead (a clock running ahead, a
    /// single result from the future) waits for the regions on time to come to it, and a region
    /// that stopped holds a slot up only that long.
    fn settle(&mut self, j: &Judging, out: &mut Derived) {
        while let Some(t) = self.site.pending.first().map(|s| s.at) {
            let newest = self.regions.iter().filter_map(|r| r.seen_at).max();
            let window = self.interval() * SILENT_INTERVALS as i32;
            let overdue = newest.is_some_and(|n| n - t >= j.max_skew + window);
            let judged = self.site.last_at;
            // The slot after the last judged, or one that later results already went past.
            let next = judged.is_some_and(|last| t - last <= window);
            let passed = newest.is_some_and(|n| n - t >= window);
            if !overdue && !((next || passed) && !self.regions.iter().any(|r| r.awaited(t, judged))) {
                return;
            }
            let n = self.site.pending.iter().take_while(|s| s.at == t).count();
            let slot: Vec<Sample> = self.site.pending.drain(..n).collect();
            self.judge(t, &slot, j, out);
        }
    }

    /// The longest interval its regions say (a site's regions normally share one).
    fn interval(&self) -> TimeDelta {
        self.regions.iter().map(Track::interval).max().unwrap_or(TimeDelta::milliseconds(DEFAULT_INTERVAL_MS))
    }

    /// A region silent for the expiry (or making room for a new one) stops counting; its open
    /// incident closes as retired, at its last result.
    fn retire(&mut self, region: &str, now: DateTime<Utc>, out: &mut Derived) {
        let Some(i) = self.regions.iter().position(|t| t.region == region) else { return };
        let t = self.regions.remove(i);
        if let Some(mut inc) = t.incident {
            inc.ended_at = Some(t.last_at.unwrap_or(now).max(inc.started_at));
            inc.end_reason = Some(EndReason::Retired);
            out.event(EventKind::Closed, now, &inc);
        }
        out.retired += 1;
    }

    /// One slot, with every result of it that came in time (any order: they are sorted by
    /// region). A region's result counts only if the region was reporting before the slot; the
    /// first result of a new or returning region only makes it known, so that whether it came
    /// before or after the slot was judged changes nothing.
    fn judge(&mut self, now: DateTime<Utc>, slot: &[Sample], j: &Judging, out: &mut Derived) {
        self.site.last_at = Some(now);
        let mut expired: Vec<String> = self
            .regions
            .iter()
            .filter(|t| !slot.iter().any(|s| s.region == t.region))
            .filter(|t| t.seen_at.max(t.last_at).is_none_or(|seen| now - seen > j.region_expiry))
            .map(|t| t.region.clone())
            .collect();
        // Retired in the order of their names, not of the tracks (which is the order the
        // regions were first heard in, and that depends on delivery).
        expired.sort();
        let mut retired = false;
        for region in expired {
            retired |= self.regions.iter().any(|t| t.region == region && t.is_down());
            self.retire(&region, now, out);
        }
        let mut closed_at = None;
        let mut joined = Vec::new();
        let mut counted: Vec<Sample> = Vec::with_capacity(slot.len());
        for s in slot {
            let i = match self.regions.iter().position(|t| t.region == s.region) {
                Some(i) => i,
                None => match self.region_index(&s.region, now, out) {
                    Some(i) => i,
                    None => {
                        out.ignored += 1;
                        continue;
                    }
                },
            };
            let t = &mut self.regions[i];
            let counts = t.reporting(now) && t.last_at.is_some_and(|last| last < now);
            if !counts {
                joined.push((i, s));
                continue;
            }
            counted.push(s.clone());
            if let Some(end) = fold_region(&self.site_id, t, s, out) {
                closed_at = closed_at.max(Some(end));
            }
            if let Some(inc) = self.site.incident.as_mut()
                && s.status == CheckStatus::Failure
                && s.at >= inc.started_at
            {
                inc.failed_checks += 1;
                out.touch(inc);
            }
        }
        // A v3 record (it has an interval) says the quorum, none meaning a majority; an older
        // one says nothing, and the last known stays. Several in one slot: the first region's.
        if let Some(s) = slot.iter().find(|s| s.interval_ms.is_some()) {
            self.site.quorum = s.quorum.map(clamp);
        }
        let reason = if closed_at.is_none() && retired { EndReason::Retired } else { EndReason::Recovered };
        self.verdict(now, slot, closed_at, reason, out);
        // The conditions by the same results the verdict counted (a region's first only makes it known).
        conditions::judge(&self.site_id, &mut self.site.degraded, &mut self.site.cert, now, &counted, out);
        // Known from now on, after the verdict (as if it had come after the slot was judged), with
        // its thresholds as it says them.
        for (i, s) in joined {
            self.regions[i].last_at = Some(now);
            remember_thresholds(&mut self.regions[i], s);
        }
    }

    /// The site as a whole at `now`: down while a quorum of the reporting regions is down
    /// (default a majority of them; a region that went silent is not counted as up).
    fn verdict(
        &mut self,
        now: DateTime<Utc>,
        slot: &[Sample],
        closed_at: Option<DateTime<Utc>>,
        reason: EndReason,
        out: &mut Derived,
    ) {
        // Unknown is not up: while the site is down, a down region that went silent still counts
        // as down (only a recovery or its retirement closes the incident); a silent region that
        // was up counts as neither.
        let open = self.site.incident.is_some();
        let counted: Vec<&Track> =
            self.regions.iter().filter(|t| t.reporting(now) || (open && t.is_down())).collect();
        let down: Vec<&Track> = counted.iter().copied().filter(|t| t.is_down()).collect();
        let quorum = match self.site.quorum.filter(|q| *q > 0) {
            Some(q) => q as usize,
            None => counted.len() / 2 + 1,
        };
        let is_down = !counted.is_empty() && down.len() >= quorum;
        match (&mut self.site.incident, is_down) {
            (None, true) => {
                // Down since the moment `quorum` of them were failing (the quorum-th earliest
                // start), but never before the site's previous incident ended.
                let mut down: Vec<&Incident> = down.iter().filter_map(|t| t.incident.as_ref()).collect();
                // (By region too: which of two that started together comes first must not depend
                // on the order the regions were first heard in.)
                down.sort_by(|a, b| (a.started_at, &a.region).cmp(&(b.started_at, &b.region)));
                let first = down[0];
                let started_at = down[quorum - 1].started_at.max(self.site.run_start.unwrap_or_default());
                let mut regions: Vec<String> = down.iter().filter_map(|i| i.region.clone()).collect();
                regions.sort();
                let url = slot.first().map_or_else(|| first.url.clone(), |s| s.url.clone());
                let incident = Incident {
                    // One verdict per slot: an opening is confirmed at a slot no other opening of
                    // this site was, so the confirmation makes the id unique per opening.
                    incident_id: Incident::site_id_for(&self.site_id, started_at, now),
                    kind: IncidentKind::Down,
                    site_id: self.site_id.clone(),
                    region: None,
                    url,
                    started_at,
                    confirmed_at: now,
                    ended_at: None,
                    end_reason: None,
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
                let end = closed_at.unwrap_or(now).max(inc.started_at);
                inc.ended_at = Some(end);
                inc.end_reason = Some(reason);
                let inc = inc.clone();
                out.event(EventKind::Closed, now, &inc);
                self.site.incident = None;
                self.site.down = false;
                self.site.run_start = Some(end);
            }
            (None, false) => {}
        }
    }
}

/// Folds results (new to the history, in the order they arrived) into the tracks of their sites
/// (`tracks`: those stored, in any order; a site without one gets a fresh one, appended).
pub fn derive_incidents(tracks: &mut Vec<SiteTracks>, results: &[&CheckResult], j: &Judging) -> Derived {
    let mut by_site: Vec<&CheckResult> = results.to_vec();
    // (Stable: each site's results stay in arrival order.)
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
        tracks[i].fold(group.iter().copied(), j, &mut out);
    }
    out
}

fn remember_thresholds(t: &mut Track, s: &Sample) {
    t.interval_ms = s.interval_ms.map(i64::from).or(t.interval_ms);
    t.down_after = s.down_after.map(clamp).or(t.down_after);
    t.up_after = s.up_after.map(clamp).or(t.up_after);
}

/// One result into its region's track; returns the end of the incident it closed, if any.
fn fold_region(site_id: &str, t: &mut Track, s: &Sample, out: &mut Derived) -> Option<DateTime<Utc>> {
    let now = s.at;
    t.last_at = Some(now);
    remember_thresholds(t, s);
    let up = s.status == CheckStatus::Success;
    if up == t.run_up && t.run_len > 0 {
        t.run_len = t.run_len.saturating_add(1);
    } else {
        t.run_up = up;
        t.run_len = 1;
        t.run_start = Some(now);
        (t.run_kind, t.run_error) = if up { (None, None) } else { (s.failure_kind, s.error.clone()) };
    }
    if up {
        if t.down && t.run_len >= t.up_after() {
            t.down = false;
            // (A stored track that is down without its incident has nothing to close.)
            if let Some(mut inc) = t.incident.take() {
                let end = t.run_start.unwrap_or(now);
                inc.ended_at = Some(end);
                inc.end_reason = Some(EndReason::Recovered);
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
            kind: IncidentKind::Down,
            site_id: site_id.to_owned(),
            region: Some(t.region.clone()),
            url: s.url.clone(),
            started_at,
            confirmed_at: now,
            ended_at: None,
            end_reason: None,
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
#[path = "tracks_tests.rs"]
mod tests;
