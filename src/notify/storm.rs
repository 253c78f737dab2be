//! Storms: one upstream failure can take thousands of sites down at once, and a message per
//! site helps nobody. When more than `threshold` incidents open on a route within `window`
//! (by the events' own times, so a backlog read late counts the same), the route sends one
//! grouped message naming them; from then on its opens and closes are folded into grouped
//! updates, at most one per `update_every`, until nothing has opened for a `window` (by the
//! clock: a quiet feed ends it too) and a last message says what is still open. The openings
//! sent on their own before the storm was seen close on their own; the storm's own members
//! still open at its end close one by one, and the last of them clears the storm (PagerDuty
//! resolves its alert then). An event read twice counts once. Pure: the caller passes the time
//! and keeps the state.

use std::collections::HashSet;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use super::notice::{Notice, Sites};
use crate::domain::{EventKind, IncidentEvent};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormPolicy {
    /// More openings than this within `window` make a storm.
    pub threshold: usize,
    pub window: Duration,
    /// At most one grouped update this often.
    pub update_every: Duration,
}

impl Default for StormPolicy {
    fn default() -> Self {
        StormPolicy {
            threshold: 10,
            window: Duration::from_secs(300),
            update_every: Duration::from_secs(300),
        }
    }
}

/// A storm under way: its incidents still open and what changed since its last message.
#[derive(Debug, Clone, PartialEq)]
struct Active {
    storm_id: Uuid,
    seq: u32,
    /// Every incident of the storm still open (those sent on their own included).
    open: BTreeMap<Uuid, String>,
    /// Those sent on their own before the storm was seen.
    alone: HashSet<Uuid>,
    opened: Vec<String>,
    closed: Vec<String>,
    /// Its own incidents closed (folded) so far: a closing read again says nothing new.
    closed_ids: HashSet<Uuid>,
    /// Every incident that was part of it: an opening read again says nothing new.
    seen: HashSet<Uuid>,
    /// When the last opening was read (the storm ends a window after it).
    last_open: DateTime<Utc>,
    /// When its last message went out.
    last_sent: DateTime<Utc>,
}

/// One route's storm detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Storm {
    policy: StormPolicy,
    /// Openings within the window, by event time, still open: (time, incident, site).
    recent: VecDeque<(DateTime<Utc>, Uuid, String)>,
    /// Incidents closed within the window: an opening of one read again is no new opening.
    closed_recently: VecDeque<(DateTime<Utc>, Uuid)>,
    active: Option<Active>,
    /// Ended storms whose own members are still open: (storm id, members, next seq).
    lingering: Vec<(Uuid, HashSet<Uuid>, u32)>,
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Storm {
    pub fn new(policy: StormPolicy) -> Self {
        Storm {
            policy,
            recent: VecDeque::new(),
            closed_recently: VecDeque::new(),
            active: None,
            lingering: Vec::new(),
        }
    }

    pub fn is_raging(&self) -> bool {
        self.active.is_some()
    }

    /// Does it know this incident (an opening or closing it read within its window, or a part
    /// of a storm under way or still lingering)?
    pub fn knows(&self, id: &Uuid) -> bool {
        self.recent.iter().any(|(_, i, _)| i == id)
            || self.closed_recently.iter().any(|(_, i)| i == id)
            || self.active.as_ref().is_some_and(|a| a.seen.contains(id) || a.open.contains_key(id))
            || self.lingering.iter().any(|(_, members, _)| members.contains(id))
    }

    /// What the route sends for this event, which it took, read at `now`: the event itself, the
    /// storm's first message, or nothing (folded into the next update).
    pub fn on_event(&mut self, e: &IncidentEvent, now: DateTime<Utc>) -> Vec<Notice> {
        let (id, site) = (e.incident.incident_id, e.incident.site_id.clone());
        if e.kind == EventKind::Closed
            && let Some(k) = self.lingering.iter().position(|(_, members, _)| members.contains(&id))
        {
            let (storm_id, members, seq) = &mut self.lingering[k];
            members.remove(&id);
            let mut out = vec![Notice::Event(e.clone())];
            if members.is_empty() {
                out.push(Notice::StormCleared { storm_id: *storm_id, seq: *seq });
                self.lingering.remove(k);
            }
            return out;
        }
        if let Some(a) = self.active.as_mut() {
            match e.kind {
                EventKind::Opened => {
                    // Read again (a part of the storm, or closed before it began).
                    if self.closed_recently.iter().any(|(_, i)| *i == id) || !a.seen.insert(id) {
                        return Vec::new();
                    }
                    a.open.insert(id, site.clone());
                    a.opened.push(site);
                    a.last_open = a.last_open.max(now);
                }
                EventKind::Closed => {
                    if a.closed_ids.contains(&id) {
                        return Vec::new(); // read again
                    }
                    let alone = a.alone.remove(&id);
                    if a.open.remove(&id).is_none() || alone {
                        // Sent on its own (before the storm was seen): its closing is its own too.
                        return vec![Notice::Event(e.clone())];
                    }
                    a.closed.push(site);
                    a.closed_ids.insert(id);
                }
            }
            return self.tick(now);
        }
        match e.kind {
            EventKind::Closed => {
                self.recent.retain(|(_, i, _)| *i != id);
                let window = delta(self.policy.window);
                self.closed_recently.retain(|(t, _)| e.at - *t < window);
                self.closed_recently.push_back((e.at, id));
                vec![Notice::Event(e.clone())]
            }
            // A member of an ended storm still open, read again: it was told in the storm.
            EventKind::Opened if self.lingering.iter().any(|(_, members, _)| members.contains(&id)) => {
                Vec::new()
            }
            // Read again: the same notice, so the same deliveries, recorded once.
            EventKind::Opened
                if self.recent.iter().any(|(_, i, _)| *i == id)
                    || self.closed_recently.iter().any(|(_, i)| *i == id) =>
            {
                vec![Notice::Event(e.clone())]
            }
            EventKind::Opened => {
                let window = delta(self.policy.window);
                self.recent.push_back((e.at, id, site));
                self.recent.retain(|(t, _, _)| e.at - *t < window);
                if self.recent.len() <= self.policy.threshold {
                    return vec![Notice::Event(e.clone())];
                }
                let name = format!("storm\n{}", e.event_id);
                let storm_id = Uuid::new_v5(&crate::domain::NAMESPACE, name.as_bytes());
                let opened = Sites::of(self.recent.iter().map(|(_, _, s)| s.as_str()));
                // All but this last one went out on their own.
                let alone = self.recent.iter().map(|(_, i, _)| *i).filter(|i| *i != id).collect();
                let seen = self.recent.iter().map(|(_, i, _)| *i).collect();
                self.active = Some(Active {
                    storm_id,
                    seq: 0,
                    alone,
                    open: self.recent.drain(..).map(|(_, i, s)| (i, s)).collect(),
                    opened: Vec::new(),
                    closed: Vec::new(),
                    closed_ids: HashSet::new(),
                    seen,
                    last_open: now,
                    last_sent: now,
                });
                vec![Notice::StormStarted { storm_id, opened }]
            }
        }
    }

    /// The storm's message due at `now`, if any: an update when something changed and
    /// `update_every` has passed since its last message.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Notice> {
        let Some(a) = self.active.as_mut() else { return Vec::new() };
        let changed = !a.opened.is_empty() || !a.closed.is_empty();
        if changed && now - a.last_sent >= delta(self.policy.update_every) {
            a.seq += 1;
            a.last_sent = now;
            let update = Notice::StormUpdate {
                storm_id: a.storm_id,
                seq: a.seq,
                opened: Sites::of(a.opened.iter().map(String::as_str)),
                closed: Sites::of(a.closed.iter().map(String::as_str)),
                open: a.open.len(),
            };
            a.opened.clear();
            a.closed.clear();
            return vec![update];
        }
        Vec::new()
    }

    /// Ends the storm once nothing has opened for a window at `now`: its last message lists
    /// what is still open (changes not sent in an update yet included).
    pub fn settle(&mut self, now: DateTime<Utc>) -> Vec<Notice> {
        let window = delta(self.policy.window);
        let Some(a) = self.active.as_ref() else { return Vec::new() };
        if now - a.last_open < window {
            return Vec::new();
        }
        let a = self.active.take().expect("checked above");
        let members: HashSet<Uuid> = a.open.keys().filter(|i| !a.alone.contains(i)).copied().collect();
        let cleared = members.is_empty();
        if !cleared {
            self.lingering.push((a.storm_id, members, a.seq + 2));
        }
        vec![Notice::StormEnded {
            storm_id: a.storm_id,
            seq: a.seq + 1,
            open: Sites::of(a.open.values().map(String::as_str)),
            cleared,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::fixtures::t;

    fn event(site: &str, kind: EventKind, at: i64) -> IncidentEvent {
        super::super::fixtures::event(site, None, kind, at)
    }

    fn policy() -> StormPolicy {
        StormPolicy { threshold: 3, window: Duration::from_secs(60), update_every: Duration::from_secs(30) }
    }

    fn kinds(n: &[Notice]) -> Vec<&'static str> {
        n.iter()
            .map(|n| match n {
                Notice::Event(_) => "event",
                Notice::Reminder { .. } => "reminder",
                Notice::StormStarted { .. } => "started",
                Notice::StormUpdate { .. } => "update",
                Notice::StormEnded { .. } => "ended",
                Notice::StormCleared { .. } => "cleared",
                Notice::Test { .. } => "test",
            })
            .collect()
    }

    #[test]
    fn openings_up_to_the_threshold_go_out_one_by_one() {
        let mut s = Storm::new(policy());
        for (i, site) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(kinds(&s.on_event(&event(site, EventKind::Opened, i as i64), t(i as i64))), ["event"]);
        }
        // Spread wider than the window: never a storm.
        assert_eq!(kinds(&s.on_event(&event("d", EventKind::Opened, 70), t(70))), ["event"]);
        assert!(!s.is_raging());
    }

    #[test]
    fn a_thousand_openings_give_one_grouped_message_and_grouped_updates() {
        let mut s = Storm::new(policy());
        let mut sent = Vec::new();
        for i in 0..1000 {
            let site = format!("site-{i:04}");
            sent.extend(s.on_event(&event(&site, EventKind::Opened, i / 100), t(i / 100)));
        }
        // Three on their own, then the storm's first message; the rest folded (10 s of events,
        // updates every 30 s).
        assert_eq!(kinds(&sent), ["event", "event", "event", "started"]);
        let Notice::StormStarted { opened, .. } = &sent[3] else { unreachable!() };
        assert_eq!((opened.count, opened.named[0].as_str()), (4, "site-0000"));
        // Half of them recover; an update after update_every names what changed.
        let mut later = Vec::new();
        for i in 0..500 {
            later.extend(s.on_event(&event(&format!("site-{i:04}"), EventKind::Closed, 20), t(20)));
        }
        // The three sent on their own close on their own; the rest is folded.
        assert_eq!(kinds(&later), ["event", "event", "event"]);
        let update = s.tick(t(31));
        let [Notice::StormUpdate { seq, opened, closed, open, .. }] = update.as_slice() else {
            panic!("one update: {update:?}")
        };
        assert_eq!((*seq, opened.count, closed.count, *open), (1, 996, 497, 500));
        assert!(s.tick(t(40)).is_empty(), "nothing new, nothing sent");
        // No opening for a window: the storm ends with what is open.
        assert!(s.settle(t(68)).is_empty(), "the last opening (read at 9 s) is not a window old yet");
        let end = s.settle(t(69));
        let [Notice::StormEnded { seq, open, cleared, .. }] = end.as_slice() else { panic!("{end:?}") };
        assert_eq!((*seq, open.count, *cleared), (2, 500, false));
        assert!(!s.is_raging());
        // After it, its members close one by one, and the last one clears the storm.
        for i in 500..999 {
            let n = s.on_event(&event(&format!("site-{i:04}"), EventKind::Closed, 90), t(96));
            assert_eq!(kinds(&n), ["event"]);
        }
        let last = s.on_event(&event("site-0999", EventKind::Closed, 90), t(96));
        assert_eq!(kinds(&last), ["event", "cleared"]);
        let Notice::StormCleared { seq, .. } = last[1] else { unreachable!() };
        assert_eq!(seq, 3);
    }

    #[test]
    fn an_opening_read_twice_counts_once() {
        let mut s = Storm::new(policy());
        for _ in 0..4 {
            assert_eq!(kinds(&s.on_event(&event("a", EventKind::Opened, 0), t(0))), ["event"]);
        }
        assert!(!s.is_raging(), "one incident is no storm");
        for (i, site) in ["b", "c", "d"].iter().enumerate() {
            s.on_event(&event(site, EventKind::Opened, i as i64), t(i as i64));
        }
        assert!(s.is_raging());
        assert!(s.on_event(&event("d", EventKind::Opened, 3), t(3)).is_empty(), "folded, once");
    }

    #[test]
    fn a_storm_that_ends_with_only_alone_incidents_open_is_cleared_at_its_end() {
        let mut s = Storm::new(policy());
        for (i, site) in ["a", "b", "c", "d"].iter().enumerate() {
            s.on_event(&event(site, EventKind::Opened, i as i64), t(i as i64));
        }
        // d, the storm's own, recovers; a, b, c (sent alone) are still open at the end.
        assert!(s.on_event(&event("d", EventKind::Closed, 5), t(5)).is_empty());
        let end = s.settle(t(100));
        let [Notice::StormEnded { open, cleared, .. }] = end.as_slice() else { panic!("{end:?}") };
        assert_eq!((open.count, *cleared), (3, true));
        assert_eq!(kinds(&s.on_event(&event("a", EventKind::Closed, 101), t(101))), ["event"]);
    }

    #[test]
    fn a_close_of_an_incident_sent_on_its_own_is_sent_on_its_own() {
        let mut s = Storm::new(policy());
        s.on_event(&event("old", EventKind::Opened, -100), t(-100));
        for (i, site) in ["a", "b", "c", "d"].iter().enumerate() {
            s.on_event(&event(site, EventKind::Opened, i as i64), t(i as i64));
        }
        assert!(s.is_raging());
        assert_eq!(kinds(&s.on_event(&event("old", EventKind::Closed, 5), t(5))), ["event"]);
    }

    #[test]
    fn the_same_events_give_the_same_storm_id() {
        let run = || {
            let mut s = Storm::new(policy());
            (0..5)
                .flat_map(|i| s.on_event(&event(&format!("s{i}"), EventKind::Opened, i), t(i)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
