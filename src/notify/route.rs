//! Routes: which incident events go to which providers. A route matches on site name patterns,
//! on site-wide against region incidents, and on whether it is a recovery; each of its providers
//! gets its own delivery, with an id derived from the event, the route and the provider, so a
//! second reading of the same event (a restart, another instance of the group) plans the same
//! deliveries and the store keeps them once.

use std::time::Duration;

use uuid::Uuid;

use super::notice::Notice;
use crate::domain::{EventKind, IncidentEvent, IncidentKind};

/// A site name pattern: `*` any run of characters, `?` one, `[...]` a class (glob syntax).
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    matcher: globset::GlobMatcher,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Self, String> {
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(false)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(Pattern { text: text.to_owned(), matcher: glob.compile_matcher() })
    }

    pub fn matches(&self, site: &str) -> bool {
        self.matcher.is_match(site)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Which incidents of a site a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The site as a whole (the quorum of its regions): the default.
    Site,
    /// Each region's own incidents.
    Region,
    /// Both.
    Any,
}

impl Scope {
    pub const NAMES: [&str; 3] = ["site", "region", "any"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "site" => Some(Scope::Site),
            "region" => Some(Scope::Region),
            "any" => Some(Scope::Any),
            _ => None,
        }
    }

    fn takes(self, region: Option<&str>) -> bool {
        match self {
            Scope::Site => region.is_none(),
            Scope::Region => region.is_some(),
            Scope::Any => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    /// Sites whose name matches any of these (none: every site).
    pub sites: Vec<Pattern>,
    pub scope: Scope,
    /// Incidents of these kinds (none: every kind).
    pub kinds: Vec<IncidentKind>,
    /// Closings are sent too (default true).
    pub send_on_resolved: bool,
    /// A reminder while an incident stays open, this often.
    pub repeat_every: Option<Duration>,
    /// Provider names, each delivered to independently.
    pub providers: Vec<String>,
}

impl Route {
    /// Does this route take the event?
    pub fn takes(&self, e: &IncidentEvent) -> bool {
        let i = &e.incident;
        (self.sites.is_empty() || self.sites.iter().any(|p| p.matches(&i.site_id)))
            && self.scope.takes(i.region.as_deref())
            && (self.kinds.is_empty() || self.kinds.contains(&i.kind))
            && (e.kind == EventKind::Opened || self.send_on_resolved)
    }
}

/// One message to one provider, by one route.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// UUIDv5 of the notice's key, the route and the provider: the idempotency key receivers see.
    pub delivery_id: Uuid,
    pub route: String,
    pub provider: String,
    pub notice: Notice,
}

impl Delivery {
    pub fn new(notice: &Notice, route: &str, provider: &str) -> Self {
        let name = format!("delivery\n{}\n{route}\n{provider}", notice.key());
        Delivery {
            delivery_id: Uuid::new_v5(&crate::domain::NAMESPACE, name.as_bytes()),
            route: route.to_owned(),
            provider: provider.to_owned(),
            notice: notice.clone(),
        }
    }
}

/// The deliveries of a route's notices: one per notice and provider, each tried on its own.
pub fn plan(route: &Route, notices: &[Notice]) -> Vec<Delivery> {
    notices
        .iter()
        .flat_map(|n| route.providers.iter().map(move |p| Delivery::new(n, &route.name, p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(site: &str, region: Option<&str>, kind: EventKind) -> IncidentEvent {
        super::super::fixtures::event(site, region, kind, 0)
    }

    fn route(name: &str, sites: &[&str], scope: Scope, providers: &[&str]) -> Route {
        Route {
            kinds: vec![],
            name: name.into(),
            sites: sites.iter().map(|s| Pattern::new(s).unwrap()).collect(),
            scope,
            send_on_resolved: true,
            repeat_every: None,
            providers: providers.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn patterns_are_globs_over_the_whole_name() {
        let p = Pattern::new("shop-*").unwrap();
        assert!(p.matches("shop-eu") && p.matches("shop-") && !p.matches("my-shop-eu"));
        let p = Pattern::new("api-?.example/v[12]").unwrap();
        assert!(
            p.matches("api-a.example/v1")
                && !p.matches("api-ab.example/v1")
                && !p.matches("api-a.example/v3")
        );
        assert!(Pattern::new("shop-[").is_err(), "an unclosed class is a problem, not a silent literal");
    }

    #[test]
    fn a_route_takes_its_sites_scope_and_kinds() {
        let shop = route("shop", &["shop-*"], Scope::Site, &["slack"]);
        assert!(shop.takes(&event("shop-eu", None, EventKind::Opened)));
        assert!(!shop.takes(&event("shop-eu", Some("eu"), EventKind::Opened)), "site-wide only");
        assert!(!shop.takes(&event("blog", None, EventKind::Opened)));
        let mut quiet = route("quiet", &[], Scope::Any, &["pager"]);
        quiet.send_on_resolved = false;
        assert!(quiet.takes(&event("blog", Some("us"), EventKind::Opened)), "no pattern: every site");
        assert!(!quiet.takes(&event("blog", Some("us"), EventKind::Closed)), "no recovery message");
        let regions = route("regions", &[], Scope::Region, &["hook"]);
        assert!(regions.takes(&event("x", Some("eu"), EventKind::Closed)));
        assert!(!regions.takes(&event("x", None, EventKind::Closed)));
    }

    #[test]
    fn each_provider_gets_its_own_delivery_with_a_stable_id() {
        let shop = route("shop", &["shop-*"], Scope::Site, &["slack", "pager"]);
        let all = route("all", &[], Scope::Site, &["slack"]);
        let opened = Notice::Event(event("shop-eu", None, EventKind::Opened));
        let closed = Notice::Event(event("shop-eu", None, EventKind::Closed));
        let first = plan(&shop, std::slice::from_ref(&opened));
        let names: Vec<(&str, &str)> =
            first.iter().map(|d| (d.route.as_str(), d.provider.as_str())).collect();
        assert_eq!(names, [("shop", "slack"), ("shop", "pager")]);
        assert_eq!(
            first,
            plan(&shop, std::slice::from_ref(&opened)),
            "the same notice plans the same deliveries"
        );
        let mut ids: Vec<Uuid> = first.iter().map(|d| d.delivery_id).collect();
        ids.extend(plan(&all, std::slice::from_ref(&opened)).iter().map(|d| d.delivery_id));
        ids.extend(plan(&shop, std::slice::from_ref(&closed)).iter().map(|d| d.delivery_id));
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "another route or another notice: other ids");
    }
}
