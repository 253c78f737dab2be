//! `status` for a fleet: which rows (site and region) a person asked for — by state, site
//! pattern and region —, in what order (problems first, longest in their state first), how many
//! the table shows, and the summary per region that leads it.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::table::Overview;
use crate::domain::{CheckStatus, IncidentKind, SiteStatus};
use crate::notify::Pattern;

/// A row's state as `status` counts and filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum State {
    /// Its newest result failed.
    Down,
    /// No result for more than two intervals.
    Stale,
    /// Up, but its site has an open DEGRADED incident (slow).
    Degraded,
    /// Its newest result succeeded.
    Up,
}

impl State {
    pub fn of(s: &SiteStatus, o: &Overview, now: DateTime<Utc>) -> State {
        if s.is_stale(now) {
            State::Stale
        } else if s.status == CheckStatus::Failure {
            State::Down
        } else if o.incidents.iter().any(|i| i.kind == IncidentKind::Degraded && i.site_id == s.site_id) {
            State::Degraded
        } else {
            State::Up
        }
    }
}

/// The order of the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Sort {
    /// Down first, then stale, degraded, up; within each, longest in its state first.
    #[default]
    State,
    /// Longest in its state first, whatever the state.
    Since,
    /// By site name, then region.
    Site,
}

/// What `status` shows.
#[derive(Debug, Clone)]
pub struct Query {
    /// Only rows in these states (all when empty).
    pub states: Vec<State>,
    /// Only sites matching one of these globs (all when empty).
    pub sites: Vec<Pattern>,
    /// Only these regions (all when empty).
    pub regions: Vec<String>,
    pub sort: Sort,
    /// Most rows in the table (`None`: all); the JSON output is never capped.
    pub limit: Option<usize>,
}

/// Rows a table shows unless asked for more.
pub const DEFAULT_LIMIT: usize = 50;

impl Default for Query {
    fn default() -> Self {
        Query {
            states: Vec::new(),
            sites: Vec::new(),
            regions: Vec::new(),
            sort: Sort::State,
            limit: Some(DEFAULT_LIMIT),
        }
    }
}

impl Query {
    fn wants(&self, s: &SiteStatus, state: State) -> bool {
        (self.states.is_empty() || self.states.contains(&state))
            && (self.sites.is_empty() || self.sites.iter().any(|p| p.matches(&s.site_id)))
            && (self.regions.is_empty() || self.regions.contains(&s.region))
    }

    /// The rows asked for, in the order asked for (all of them: the caller caps).
    pub fn select<'a>(&self, o: &'a Overview, now: DateTime<Utc>) -> Vec<&'a SiteStatus> {
        let mut rows: Vec<(State, &SiteStatus)> = o
            .sites
            .iter()
            .map(|s| (State::of(s, o, now), s))
            .filter(|(state, s)| self.wants(s, *state))
            .collect();
        let by_site = |s: &SiteStatus| (s.site_id.clone(), s.region.clone());
        match self.sort {
            Sort::State => rows.sort_by_key(|(state, s)| (*state, since(s), by_site(s))),
            Sort::Since => rows.sort_by_key(|(_, s)| (since(s), by_site(s))),
            Sort::Site => rows.sort_by_key(|(_, s)| by_site(s)),
        }
        rows.into_iter().map(|(_, s)| s).collect()
    }
}

/// Since when a row has been in its state: a stale row since its last result.
fn since(s: &SiteStatus) -> DateTime<Utc> {
    s.status_since
}

/// The summary that leads the table: sites and rows in each state, then per region.
pub fn summary(o: &Overview, now: DateTime<Utc>) -> String {
    let mut per_region: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for s in &o.sites {
        per_region.entry(&s.region).or_default()[State::of(s, o, now) as usize] += 1;
    }
    let mut total = [0; 4];
    for counts in per_region.values() {
        for (t, n) in total.iter_mut().zip(counts) {
            *t += n;
        }
    }
    let sites = o.sites.iter().map(|s| s.site_id.as_str()).collect::<std::collections::BTreeSet<_>>().len();
    let [down, stale, degraded, up] = total;
    let mut out = format!(
        "{sites} site{} in {} region{}: {up} up, {down} down, {stale} stale, {degraded} degraded (a row per site and region)\n",
        if sites == 1 { "" } else { "s" },
        per_region.len(),
        if per_region.len() == 1 { "" } else { "s" },
    );
    if per_region.len() > 1 {
        let cells: Vec<[String; 5]> = per_region
            .iter()
            .map(|(region, [down, stale, degraded, up])| {
                [
                    region.to_string(),
                    up.to_string(),
                    down.to_string(),
                    stale.to_string(),
                    degraded.to_string(),
                ]
            })
            .collect();
        out.push_str(&super::table::columns(["REGION", "UP", "DOWN", "STALE", "DEGRADED"], &cells));
    }
    out
}

/// The note under a capped table.
pub fn left_out(shown: usize, matched: usize) -> Option<String> {
    let more = matched.checked_sub(shown).filter(|n| *n > 0)?;
    let mut note = String::new();
    let _ = write!(
        note,
        "({more} more row{} not shown: --limit 0 shows all, --state/--site/--region narrow them, --json prints every row)",
        if more == 1 { "" } else { "s" }
    );
    Some(note)
}
