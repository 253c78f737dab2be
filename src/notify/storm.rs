//! Storms: one upstream failure can take thousands of sites down at once, and a message per
//! site helps nobody. When more than `threshold` incidents open on a route within `window`
//! (by the events' own times, so a backlog read late counts the same), the route sends one
//! grouped message naming them; from then on its opens and closes are folded into grouped
//! updates, at most one per `update_every`, until nothing has opened for a `window` (by the
//! clock: a quiet feed ends it too) and a last message says what is still open. Pure: the caller
//! passes the time and keeps the state.

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
    open: BTreeMap<Uuid, String>,
    opened: Vec<String>,
    closed: Vec<String>,
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
    active: Option<Active>,
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl Storm {
    pub fn new(policy: StormPolicy) -> Self {
        Storm { policy, recent: VecDeque::new(), active: None }
    }

    pub fn is_raging(&self) -> bool {
        self.active.is_some()
    }

    /// What the route sends for this event, which it took, read at `now`: the event itself, the
    /// storm's first message, or nothing (folded into the next update).
    pub fn on_event(&mut self, e: &IncidentEvent, now: DateTime<Utc>) -> Vec<Notice> {
        let (id, site) = (e.incident.incident_id, e.incident.site_id.clone());
        if let Some(a) = self.active.as_mut() {
            match e.kind {
                EventKind::Opened => {
                    a.open.insert(id, site.clone());
                    a.opened.push(site);
                    a.last_open = a.last_open.max(now);
                }
                EventKind::Closed => {
                    if a.open.remove(&id).is_none() {
                        // Opened before the storm and sent on its own: its close is its own too.
                        return vec![Notice::Event(e.clone())];
                    }
                    a.closed.push(site);
                }
            }
            return self.tick(now);
        }
        match e.kind {
            EventKind::Closed => {
                self.recent.retain(|(_, i, _)| *i != id);
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
                self.active = Some(Active {
                    storm_id,
                    seq: 0,
                    open: self.recent.drain(..).map(|(_, i, s)| (i, s)).collect(),
                    opened: Vec::new(),
                    closed: Vec::new(),
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
        vec![Notice::StormEnded {
            storm_id: a.storm_id,
            seq: a.seq + 1,
            open: Sites::of(a.open.values().map(String::as_str)),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Incident;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn event(site: &str, kind: EventKind, at: i64) -> IncidentEvent {
        let incident = Incident {
            incident_id: Incident::id_for(site, None, t(0)),
            site_id: site.into(),
            region: None,
            url: format!("https://{site}.test/"),
            started_at: t(0),
            confirmed_at: t(0),
            ended_at: None,
            end_reason: None,
            regions: vec![],
            failure_kind: None,
            error: None,
            failed_checks: 3,
        };
        IncidentEvent::new(kind, t(at), &incident)
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
        assert!(later.is_empty(), "folded: {:?}", kinds(&later));
        let update = s.tick(t(31));
        let [Notice::StormUpdate { seq, opened, closed, open, .. }] = update.as_slice() else {
            panic!("one update: {update:?}")
        };
        assert_eq!((*seq, opened.count, closed.count, *open), (1, 996, 500, 500));
        assert!(s.tick(t(40)).is_empty(), "nothing new, nothing sent");
        // No opening for a window: the storm ends with what is open.
        assert!(s.settle(t(68)).is_empty(), "the last opening (read at 9 s) is not a window old yet");
        let end = s.settle(t(69));
        let [Notice::StormEnded { seq, open, .. }] = end.as_slice() else { panic!("{end:?}") };
        assert_eq!((*seq, open.count), (2, 500));
        assert!(!s.is_raging());
        // After it, messages go out on their own again.
        assert_eq!(kinds(&s.on_event(&event("site-0999", EventKind::Closed, 90), t(96))), ["event"]);
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
