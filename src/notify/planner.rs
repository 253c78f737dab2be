//! The planner: an incident event, read from the events topic, becomes the deliveries its routes
//! call for — each route's storm decides whether it goes out on its own or folded into grouped
//! messages, each provider gets the body it speaks, and a message inside a maintenance window is
//! planned as silenced. A route with `repeat_every` reminds of the incidents it announced one by
//! one while they stay open (not during a storm: its updates say what is open); that memory is
//! the process's own, so a restart forgets the incidents opened before it. Pure: the caller
//! passes the time and records what it returns.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Notice;
use super::outgoing::{Channel, Outgoing};
use super::reminder;
use super::render::{email_body, pagerduty_body, slack_body, webhook_body};
use super::route::{Delivery, Route, plan};
use super::silence::Maintenance;
use super::storm::{Storm, StormPolicy};
use crate::domain::{EventKind, IncidentEvent};

pub struct Planner {
    routes: Vec<Route>,
    channels: HashMap<String, Channel>,
    maintenance: Vec<Maintenance>,
    /// The silences added with `sitemon silence add`, as last read.
    silences: Vec<Maintenance>,
    /// Per route (same order): its storm, and the incidents it announced on their own that are
    /// still open, with when it last spoke of each.
    state: Vec<RouteState>,
}

struct RouteState {
    storm: Storm,
    open: HashMap<Uuid, (IncidentEvent, DateTime<Utc>)>,
    /// Incidents whose opening this route told on its own (sent, not held back), still open: their
    /// closing is told too. Learnt from the deliveries recorded for those it did not read itself
    /// (before a restart, or by another instance before a rebalance).
    told: HashSet<Uuid>,
}

fn kind(n: &Notice) -> &'static str {
    match n {
        Notice::Event(e) if e.kind == EventKind::Opened => "incident.opened",
        Notice::Event(_) => "incident.closed",
        Notice::Reminder { .. } => "incident.reminder",
        Notice::StormStarted { .. } => "storm.started",
        Notice::StormUpdate { .. } => "storm.update",
        Notice::StormEnded { .. } => "storm.ended",
        Notice::StormCleared { .. } => "storm.cleared",
        Notice::Test { .. } => "test",
    }
}

fn subject(n: &Notice) -> (Uuid, Option<String>) {
    match n {
        Notice::Event(e) | Notice::Reminder { opened: e, .. } => {
            (e.incident.incident_id, Some(e.incident.site_id.clone()))
        }
        Notice::StormStarted { storm_id, .. }
        | Notice::StormUpdate { storm_id, .. }
        | Notice::StormEnded { storm_id, .. }
        | Notice::StormCleared { storm_id, .. } => (*storm_id, None),
        Notice::Test { test_id, .. } => (*test_id, None),
    }
}

impl Planner {
    /// `channels` says which request shape each provider named by the routes speaks.
    pub fn new(
        routes: Vec<Route>,
        channels: HashMap<String, Channel>,
        storm: StormPolicy,
        maintenance: Vec<Maintenance>,
    ) -> Self {
        let state = routes
            .iter()
            .map(|_| RouteState { storm: Storm::new(storm), open: HashMap::new(), told: HashSet::new() })
            .collect();
        Planner { routes, channels, maintenance, silences: Vec::new(), state }
    }

    /// The silences now in force or to come (they hold back messages like maintenance windows).
    pub fn set_silences(&mut self, silences: Vec<Maintenance>) {
        self.silences = silences;
    }

    /// The deliveries of one event, read at `now`.
    pub fn event(&mut self, e: &IncidentEvent, now: DateTime<Utc>) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for (route, st) in self.routes.iter().zip(self.state.iter_mut()) {
            if e.kind == EventKind::Closed {
                st.open.remove(&e.incident.incident_id);
            }
            if !route.takes(e) {
                continue;
            }
            // Held back by a window or a silence: recorded as such, and no part of a storm.
            let held =
                held(&[&self.maintenance, &self.silences], &e.incident.site_id, e.incident.confirmed_at);
            let id = e.incident.incident_id;
            // A closing is told to whom its opening was: one this route neither told on its own
            // nor knows from a storm (folded into a storm it has forgotten since a restart, or
            // opened before it ran) is not a message of its own.
            if e.kind == EventKind::Closed && !held && !st.told.contains(&id) && !st.storm.knows(&id) {
                continue;
            }
            let notices = if held { vec![Notice::Event(e.clone())] } else { st.storm.on_event(e, now) };
            match e.kind {
                // (A held-back opening is not told: its closing is held back while the window
                // or silence lasts, and sent to nobody after it.)
                EventKind::Opened if !held && notices.iter().any(|n| matches!(n, Notice::Event(_))) => {
                    st.told.insert(id);
                }
                EventKind::Closed => {
                    st.told.remove(&id);
                }
                EventKind::Opened => {}
            }
            if route.repeat_every.is_some() && !held {
                for n in &notices {
                    if let Notice::Event(o) = n
                        && o.kind == EventKind::Opened
                    {
                        st.open.insert(o.incident.incident_id, (o.clone(), now));
                    }
                }
            }
            out.extend(outgoing(route, &self.channels, [&self.maintenance, &self.silences], &notices, e.at));
        }
        out
    }

    /// The deliveries of a test message to every provider of `route` (none if there is no such
    /// route), never held back.
    pub fn test(&self, route: &str) -> Vec<Outgoing> {
        let Some(r) = self.routes.iter().find(|r| r.name == route) else { return Vec::new() };
        let notice = Notice::Test { route: route.to_owned(), test_id: Uuid::new_v4() };
        outgoing(r, &self.channels, [&[], &[]], &[notice], Utc::now())
    }

    /// Does some route know this incident (it told its opening, or a storm holds it)? A closing
    /// of one no route knows needs [`learn`](Self::learn) first, from the deliveries recorded.
    pub fn knows(&self, id: &Uuid) -> bool {
        self.state.iter().any(|st| st.told.contains(id) || st.storm.knows(id))
    }

    /// Incidents whose opening each route told on its own, as the deliveries recorded say
    /// (route name, incident).
    pub fn learn(&mut self, told: &[(String, Uuid)]) {
        for (route, id) in told {
            if let Some(i) = self.routes.iter().position(|r| &r.name == route) {
                self.state[i].told.insert(*id);
            }
        }
    }

    /// A storm is under way on some route (its end is still to be sent).
    pub fn is_raging(&self) -> bool {
        self.state.iter().any(|st| st.storm.is_raging())
    }

    /// The incidents it would remind of (announced alone, not closed as far as it knows).
    pub fn reminding(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.state.iter().flat_map(|st| st.open.keys().copied()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Forgets incidents known to be closed (their closing was read by another instance of
    /// the group, after a rebalance): no more reminders of them.
    pub fn forget(&mut self, closed: &[Uuid]) {
        for st in &mut self.state {
            st.open.retain(|id, _| !closed.contains(id));
        }
    }

    /// The storms' grouped updates and ends, and the reminders, due at `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for (route, st) in self.routes.iter().zip(self.state.iter_mut()) {
            let mut notices = st.storm.tick(now);
            notices.extend(st.storm.settle(now));
            if let Some(every) = route.repeat_every
                && !st.storm.is_raging()
            {
                let mut ids: Vec<&Uuid> = st.open.keys().collect();
                ids.sort();
                let ids: Vec<Uuid> = ids.into_iter().copied().collect();
                for id in ids {
                    let (opened, last) = st.open.get_mut(&id).expect("listed above");
                    if let Some(due) = reminder::due(every, *last, now) {
                        // Counted from now: a notifier that was away reminds once, not per interval.
                        *last = now;
                        notices.push(Notice::Reminder { opened: opened.clone(), due });
                    }
                }
            }
            out.extend(outgoing(route, &self.channels, [&self.maintenance, &self.silences], &notices, now));
        }
        out
    }
}

/// Does a window or a silence hold back messages about `site` at `t`?
fn held(windows: &[&[Maintenance]; 2], site: &str, t: DateTime<Utc>) -> bool {
    windows.iter().flat_map(|w| w.iter()).any(|m| m.silences(site, t))
}

/// A route's notices as deliveries to each of its providers, with their bodies. Whether a
/// window or a silence holds one back is decided at its incident's confirmation for an event
/// (so a closing is sent when its opening was, and held back when its opening was), at `at`
/// for the rest. A provider with nothing to say to a notice
/// (PagerDuty and reminders) gets no delivery.
fn outgoing(
    route: &Route,
    channels: &HashMap<String, Channel>,
    windows: [&[Maintenance]; 2],
    notices: &[Notice],
    at: DateTime<Utc>,
) -> Vec<Outgoing> {
    plan(route, notices)
        .into_iter()
        .filter_map(|d: Delivery| {
            let body = match channels.get(&d.provider)? {
                Channel::Webhook => webhook_body(&d.notice, d.delivery_id),
                Channel::Slack => slack_body(&d.notice),
                Channel::Email => email_body(&d.notice),
                // The routing key is added when it is sent.
                Channel::PagerDuty => pagerduty_body(&d.notice, "")?,
            };
            let (subject, site_id) = subject(&d.notice);
            let when = match &d.notice {
                Notice::Event(e) => e.incident.confirmed_at,
                _ => at,
            };
            let mut all = windows.iter().flat_map(|w| w.iter());
            let silenced = match &site_id {
                Some(site) => all.find(|m| m.silences(site, when)),
                // A storm's messages: only a window over every site holds them back.
                None => all.find(|m| m.sites.is_empty() && m.window.contains(at)),
            }
            .map(|m| m.reason.clone());
            Some(Outgoing {
                delivery_id: d.delivery_id,
                route: d.route,
                provider: d.provider,
                subject,
                site_id,
                kind: kind(&d.notice),
                body,
                silenced,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::fixtures::t;
    use crate::notify::{Pattern, Window};

    fn event(site: &str, kind: EventKind, at: i64) -> IncidentEvent {
        super::super::fixtures::event(site, None, kind, at)
    }

    fn planner(maintenance: Vec<Maintenance>) -> Planner {
        let storm = StormPolicy { threshold: 2, ..StormPolicy::default() };
        super::super::fixtures::planner(&["hook", "pd"], storm, maintenance)
    }

    #[test]
    fn an_event_goes_to_each_provider_in_its_shape() {
        let mut p = planner(vec![]);
        let out = p.event(&event("shop", EventKind::Opened, 1), t(1));
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].provider.as_str(), out[0].kind), ("hook", "incident.opened"));
        assert_eq!(out[0].body["delivery_id"], out[0].delivery_id.to_string());
        assert_eq!(out[1].body["event_action"], "trigger");
        assert_eq!(out[1].body["routing_key"], "", "the key is added by the sender, never stored");
        assert_eq!(out[0].subject, event("shop", EventKind::Opened, 1).incident.incident_id);
        assert!(out.iter().all(|o| o.silenced.is_none()));
    }

    #[test]
    fn a_storm_folds_openings_and_a_window_silences() {
        let mut p = planner(vec![]);
        let mut kinds = Vec::new();
        for (i, s) in ["a", "b", "c", "d"].iter().enumerate() {
            kinds.extend(p.event(&event(s, EventKind::Opened, i as i64), t(i as i64)).iter().map(|o| o.kind));
        }
        assert_eq!(
            kinds,
            [
                "incident.opened",
                "incident.opened",
                "incident.opened",
                "incident.opened",
                "storm.started",
                "storm.started"
            ]
        );
        // d was folded: a grouped update, and the storm's end, no opening for a window.
        let later = p.tick(t(1000));
        let kinds: Vec<_> = later.iter().map(|o| o.kind).collect();
        assert_eq!(kinds, ["storm.update", "storm.update", "storm.ended", "storm.ended"]);

        let window = Window::Once { from: t(0), until: t(100) };
        let db = Maintenance { sites: vec![Pattern::new("db-*").unwrap()], window, reason: "upgrade".into() };
        let mut p = planner(vec![db]);
        let out = p.event(&event("db-1", EventKind::Opened, 5), t(5));
        assert!(out.iter().all(|o| o.silenced.as_deref() == Some("upgrade")), "{out:?}");
        assert!(p.event(&event("web", EventKind::Opened, 5), t(5)).iter().all(|o| o.silenced.is_none()));
        // A silence added later holds back what comes after.
        let web = Maintenance {
            sites: vec![Pattern::new("web").unwrap()],
            window: Window::Once { from: t(0), until: t(100) },
            reason: "deploy".into(),
        };
        p.set_silences(vec![web]);
        let out = p.event(&event("web", EventKind::Closed, 6), t(6));
        assert!(!out.is_empty() && out.iter().all(|o| o.silenced.as_deref() == Some("deploy")), "{out:?}");
    }

    #[test]
    fn an_open_incident_is_reminded_every_interval_until_it_closes() {
        let mut p = planner(vec![]);
        p.routes[0].repeat_every = Some(std::time::Duration::from_secs(3600));
        let shop = event("shop", EventKind::Opened, 0);
        assert_eq!(p.event(&shop, t(0)).len(), 2);
        assert!(p.tick(t(3599)).is_empty());
        let first = p.tick(t(3600));
        // The webhook reminds; PagerDuty re-notifies by itself.
        assert_eq!(
            first.iter().map(|o| (o.provider.as_str(), o.kind)).collect::<Vec<_>>(),
            [("hook", "incident.reminder")]
        );
        assert!(p.tick(t(3700)).is_empty(), "once per interval");
        // Away for three hours: one reminder, not three.
        assert_eq!(p.tick(t(4 * 3600 + 10)).len(), 1);
        let again = p.tick(t(4 * 3600 + 10));
        assert!(again.is_empty());
        p.event(&event("shop", EventKind::Closed, 5 * 3600), t(5 * 3600));
        assert!(p.tick(t(10 * 3600)).is_empty(), "closed: no more reminders");
        // Each reminder its own delivery id.
        assert_ne!(first[0].delivery_id, p.event(&shop, t(0))[0].delivery_id);
    }

    /// A silence that ends (or is removed) while its incident is open: the closing of an
    /// opening nobody was told of goes to nobody.
    #[test]
    fn the_closing_of_a_silenced_opening_is_never_sent() {
        let window = Window::Once { from: t(0), until: t(100) };
        let quiet =
            Maintenance { sites: vec![Pattern::new("web").unwrap()], window, reason: "deploy".into() };
        let mut p = planner(vec![]);
        p.set_silences(vec![quiet]);
        let opened = p.event(&event("web", EventKind::Opened, 1), t(1));
        assert!(!opened.is_empty() && opened.iter().all(|o| o.silenced.is_some()), "{opened:?}");
        p.set_silences(vec![]);
        let closed = p.event(&event("web", EventKind::Closed, 200), t(200));
        assert!(closed.iter().all(|o| o.silenced.is_some()), "nothing sent: {closed:?}");
    }

    #[test]
    fn held_back_openings_make_no_storm_and_a_sent_opening_gets_its_closing() {
        // db-* in maintenance from t(0): eleven db sites down (threshold 2) are all held back,
        // none starts a storm.
        let window = Window::Once { from: t(0), until: t(100) };
        let db = Maintenance { sites: vec![Pattern::new("db-*").unwrap()], window, reason: "upgrade".into() };
        let mut p = planner(vec![db]);
        let mut out = Vec::new();
        for i in 0..11 {
            out.extend(p.event(&event(&format!("db-{i}"), EventKind::Opened, i), t(i)));
        }
        assert!(!p.is_raging());
        assert!(out.iter().all(|o| o.kind == "incident.opened" && o.silenced.is_some()), "{out:?}");
        // An incident confirmed before a window opens is closed in it: the closing is sent.
        let window = Window::Once { from: t(50), until: t(100) };
        let shop = Maintenance { sites: vec![], window, reason: "night".into() };
        let mut p = planner(vec![shop]);
        let mut opened = event("shop", EventKind::Opened, 10);
        opened.incident.confirmed_at = t(10);
        assert!(p.event(&opened, t(10)).iter().all(|o| o.silenced.is_none()));
        let mut late = event("shop", EventKind::Closed, 60);
        late.incident.confirmed_at = t(10);
        let out = p.event(&late, t(60));
        assert!(!out.is_empty() && out.iter().all(|o| o.silenced.is_none()), "{out:?}");
    }
}

#[cfg(test)]
mod properties {
    //! Reading an event again (a restart before the offset moved, a rebalance) must plan nothing
    //! new: the deliveries of any stream read with repeats are those of the stream read once.
    use super::*;
    use crate::notify::fixtures::t;
    use crate::notify::{Pattern, Window};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn planner() -> Planner {
        let window = Window::Once { from: t(0), until: t(1_000_000) };
        let quiet = Maintenance { sites: vec![Pattern::new("s1*").unwrap()], window, reason: "m".into() };
        let storm = StormPolicy {
            threshold: 3,
            window: Duration::from_secs(60),
            update_every: Duration::from_secs(5),
        };
        super::super::fixtures::planner(&["hook"], storm, vec![quiet])
    }

    /// Events of 16 sites, each opened and later closed, in an order the steps choose; each read
    /// `repeats[i] % 3 + 1` times in a row; after the stretch up to `replay.1` percent, the
    /// stretch from `replay.0` percent is read again (a rebalance back to an older offset).
    fn run(steps: &[(u8, bool)], repeats: &[u8], replay: (usize, usize)) -> BTreeSet<Uuid> {
        // Each opening its own incident (started then); its closing ends it.
        let mut open: [Option<crate::domain::Incident>; 16] = Default::default();
        let events: Vec<(IncidentEvent, bool)> = steps
            .iter()
            .enumerate()
            .map(|(i, (site, tick))| {
                let s = usize::from(*site % 16);
                let at = t(i as i64);
                let e = match open[s].take() {
                    Some(mut incident) => {
                        incident.ended_at = Some(at);
                        IncidentEvent::new(EventKind::Closed, at, &incident)
                    }
                    None => {
                        let incident = crate::domain::Incident::sample(&format!("s{s}"), None, at);
                        open[s] = Some(incident.clone());
                        IncidentEvent::new(EventKind::Opened, at, &incident)
                    }
                };
                (e, *tick)
            })
            .collect();
        let (from, to) = (replay.0 * events.len() / 100, replay.1 * events.len() / 100);
        let mut order: Vec<usize> = (0..to).collect();
        order.extend(from.min(to)..events.len());
        let mut p = planner();
        let mut ids = BTreeSet::new();
        for i in order {
            let (e, tick) = &events[i];
            for _ in 0..=repeats.get(i).copied().unwrap_or(0) % 3 {
                ids.extend(p.event(e, e.at).into_iter().map(|o| o.delivery_id));
            }
            if *tick {
                ids.extend(p.tick(e.at).into_iter().map(|o| o.delivery_id));
            }
        }
        ids.extend(p.tick(t(10_000)).into_iter().map(|o| o.delivery_id));
        ids
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn an_event_read_again_plans_nothing_new(
            steps in proptest::collection::vec((0u8..16, any::<bool>()), 1..80),
            repeats in proptest::collection::vec(0u8..3, 80),
            replay in (0usize..=100, 0usize..=100),
        ) {
            let once = run(&steps, &[], (100, 100));
            prop_assert_eq!(run(&steps, &repeats, (100, 100)), once.clone(), "read with repeats");
            let (from, to) = (replay.0.min(replay.1), replay.0.max(replay.1));
            prop_assert_eq!(run(&steps, &repeats, (from, to)), once, "a stretch read again");
        }
    }
}
