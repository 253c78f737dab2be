//! The `notify` section: providers (read by `providers.rs`), routes that send incident events to
//! them, the storm policy and maintenance windows.

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde_yaml_ng::Value;

use super::reader::{Fields, Reader, join};
use crate::domain::IncidentKind;
use crate::notify::{Maintenance, Pattern, Route, Scope, StormPolicy, Window};

const NOTIFY: &[&str] = &["group_id", "providers", "routes", "storm", "maintenance"];
const ROUTE: &[&str] = &["name", "sites", "scope", "kinds", "send_on_resolved", "repeat_every", "providers"];
const STORM: &[&str] = &["threshold", "window", "update_every"];
const MAINTENANCE: &[&str] = &["sites", "from", "until", "weekly", "reason"];
const WEEKLY: &[&str] = &["days", "at", "for"];

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The consumer group of `sitemon notify` instances on `kafka.events_topic`.
    pub group_id: String,
    pub providers: Vec<super::providers::ProviderConfig>,
    pub routes: Vec<Route>,
    pub storm: StormPolicy,
    pub maintenance: Vec<Maintenance>,
}

fn patterns(r: &mut Reader, f: &Fields) -> Option<Vec<Pattern>> {
    let Some((v, p)) = f.get("sites") else { return Some(Vec::new()) };
    let items: Vec<(Value, String)> = match v {
        // An empty list would mean every site, which a list from an empty variable must not.
        Value::Sequence(items) if items.is_empty() => {
            r.problem(&p, "an empty list; leave `sites` out for every site");
            return None;
        }
        Value::Sequence(items) => {
            items.iter().enumerate().map(|(i, v)| (v.clone(), format!("{p}[{i}]"))).collect()
        }
        other => vec![(other.clone(), p)],
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (v, p) in items {
        match r.nonempty_string(&v, &p).map(|s| Pattern::new(&s)) {
            Some(Ok(pat)) => out.push(pat),
            Some(Err(e)) => {
                r.problem(&p, format!("not a site pattern: {e}"));
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_route(r: &mut Reader, v: &Value, path: &str, providers: &[String]) -> Option<Route> {
    let f = r.fields(v, path, ROUTE)?;
    let name = match f.get("name") {
        Some((v, p)) => r.nonempty_string(v, &p),
        None => {
            r.problem(&join(path, "name"), "missing: a name for the route, e.g. `on-call`");
            None
        }
    };
    let sites = patterns(r, &f);
    let scope = f.get("scope").map_or(Some(Scope::Site), |(v, p)| {
        r.nonempty_string(v, &p).and_then(|s| {
            let scope = Scope::parse(&s);
            if scope.is_none() {
                r.problem(&p, format!("expected one of: {}", Scope::NAMES.join(", ")));
            }
            scope
        })
    });
    let kinds = f.get("kinds").map_or(Some(Vec::new()), |(v, p)| {
        let items = r.list(v, &p)?;
        if items.is_empty() {
            r.problem(&p, "an empty list; leave `kinds` out for every kind");
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            let Some(k) = r.nonempty_string(item, &ip) else { continue };
            match IncidentKind::parse(&k.to_uppercase()) {
                Some(k) => out.push(k),
                None => {
                    let all: Vec<&str> = IncidentKind::ALL.iter().map(|k| k.as_str()).collect();
                    r.problem(
                        &ip,
                        format!("unknown incident kind `{k}`; expected one of: {}", all.join(", ")),
                    );
                }
            }
        }
        (out.len() == items.len()).then_some(out)
    });
    let resolved = f.get("send_on_resolved").map_or(Some(true), |(v, p)| r.boolean(v, &p));
    let repeat = f.get("repeat_every").map(|(v, p)| r.duration(v, &p));
    let names = match f.get("providers") {
        Some((v, p)) => r.list(v, &p).and_then(|items| {
            if items.is_empty() {
                r.problem(&p, "must name at least one provider");
                return None;
            }
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let ip = format!("{p}[{i}]");
                let Some(n) = r.nonempty_string(item, &ip) else { continue };
                if !providers.contains(&n) {
                    r.problem(&ip, format!("no provider named `{n}` under notify.providers"));
                } else if out.contains(&n) {
                    r.problem(&ip, format!("`{n}` is named twice"));
                } else {
                    out.push(n);
                }
            }
            (out.len() == items.len()).then_some(out)
        }),
        None => {
            r.problem(&join(path, "providers"), "missing: the providers this route sends to");
            None
        }
    };
    Some(Route {
        name: name?,
        sites: sites?,
        scope: scope?,
        kinds: kinds?,
        send_on_resolved: resolved?,
        repeat_every: repeat.map_or(Some(None), |d| d.map(Some))?,
        providers: names?,
    })
}

fn read_storm(r: &mut Reader, v: &Value, path: &str) -> Option<StormPolicy> {
    let f = r.fields(v, path, STORM)?;
    let d = StormPolicy::default();
    let threshold = f.get("threshold").map_or(Some(d.threshold as u64), |(v, p)| r.uint(v, &p, 1, 1_000_000));
    let window = f.get("window").map_or(Some(d.window), |(v, p)| r.duration(v, &p));
    let update = f.get("update_every").map_or(Some(d.update_every), |(v, p)| r.duration(v, &p));
    Some(StormPolicy { threshold: threshold? as usize, window: window?, update_every: update? })
}

fn instant(r: &mut Reader, f: &Fields, key: &str) -> Option<Option<DateTime<Utc>>> {
    let Some((v, p)) = f.get(key) else { return Some(None) };
    let s = r.nonempty_string(v, &p)?;
    match DateTime::parse_from_rfc3339(s.trim()) {
        Ok(t) => Some(Some(t.with_timezone(&Utc))),
        Err(_) => {
            r.problem(&p, "expected a time such as `2026-12-24T00:00:00Z` (RFC 3339, with its offset)");
            None
        }
    }
}

fn weekday(s: &str) -> Option<Weekday> {
    s.trim().parse().ok()
}

fn read_weekly(r: &mut Reader, v: &Value, path: &str) -> Option<Window> {
    let f = r.fields(v, path, WEEKLY)?;
    let days = match f.get("days") {
        Some((v, p)) => r.list(v, &p).and_then(|items| {
            let days: Vec<Option<Weekday>> = items
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let ip = format!("{p}[{i}]");
                    let day = r.nonempty_string(d, &ip).and_then(|s| weekday(&s));
                    if day.is_none() {
                        r.problem(&ip, "expected a day: mon, tue, wed, thu, fri, sat or sun");
                    }
                    day
                })
                .collect();
            if days.is_empty() {
                r.problem(&p, "name at least one day");
            }
            days.into_iter().collect::<Option<Vec<_>>>().filter(|d| !d.is_empty())
        }),
        // Every day.
        None => Some(vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]),
    };
    let at = match f.get("at") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|s| {
            let t = NaiveTime::parse_from_str(s.trim(), "%H:%M").ok();
            if t.is_none() {
                r.problem(&p, "expected a time of day in UTC, e.g. `02:00`");
            }
            t
        }),
        None => {
            r.problem(&join(path, "at"), "missing: the time of day it starts, in UTC, e.g. `02:00`");
            None
        }
    };
    let length = match f.get("for") {
        Some((v, p)) => r.duration(v, &p),
        None => {
            r.problem(&join(path, "for"), "missing: how long it lasts, e.g. `2h`");
            None
        }
    };
    Some(Window::Weekly { days: days?, at: at?, length: length? })
}

fn read_maintenance(r: &mut Reader, v: &Value, path: &str) -> Option<Maintenance> {
    let f = r.fields(v, path, MAINTENANCE)?;
    let sites = patterns(r, &f);
    let reason = f.get("reason").map_or(Some("maintenance".to_owned()), |(v, p)| r.nonempty_string(v, &p));
    let from = instant(r, &f, "from");
    let until = instant(r, &f, "until");
    let window = match (f.get("weekly"), from?, until?) {
        (Some((v, p)), None, None) => read_weekly(r, v, &p),
        (None, Some(from), Some(until)) if from < until => Some(Window::Once { from, until }),
        (None, Some(_), Some(_)) => {
            r.problem(&join(path, "until"), "must be later than `from`");
            None
        }
        (Some(_), _, _) => {
            r.problem(path, "either `weekly` or `from` and `until`, not both");
            None
        }
        _ => {
            r.problem(path, "needs `from` and `until` (one-off) or `weekly` (recurring)");
            None
        }
    };
    Some(Maintenance { sites: sites?, window: window?, reason: reason? })
}

pub fn read_notify(r: &mut Reader, v: &Value, path: &str) -> Option<NotifyConfig> {
    let f = r.fields(v, path, NOTIFY)?;
    let group_id =
        f.get("group_id").map_or(Some("sitemon-notify".to_owned()), |(v, p)| r.nonempty_string(v, &p));
    let mut providers = Vec::new();
    let mut names = Vec::new();
    let mut ok = true;
    match f.get("providers") {
        Some((Value::Mapping(map), p)) => {
            for (k, v) in map {
                let Some(name) = k.as_str() else {
                    r.problem(&p, "provider names must be strings");
                    ok = false;
                    continue;
                };
                names.push(name.to_owned());
                match super::providers::read_provider(r, name, v, &join(&p, name)) {
                    Some(provider) => providers.push(provider),
                    None => ok = false,
                }
            }
        }
        Some((_, p)) => {
            r.problem(&p, "expected a mapping of provider names to providers");
            ok = false;
        }
        None => {
            r.problem(&join(path, "providers"), "missing: at least one provider");
            ok = false;
        }
    }
    let mut routes = Vec::new();
    match f.get("routes") {
        Some((v, p)) => {
            if let Some(items) = r.list(v, &p) {
                let mut seen: Vec<&str> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let ip = format!("{p}[{i}]");
                    // Route names are delivery ids' inputs: one route per name (even a broken one).
                    if let Some(name) = item.get("name").and_then(Value::as_str) {
                        if seen.contains(&name) {
                            r.problem(
                                &join(&ip, "name"),
                                format!("a route named `{name}` is already defined"),
                            );
                            ok = false;
                        }
                        seen.push(name);
                    }
                    match read_route(r, item, &ip, &names) {
                        Some(route) => routes.push(route),
                        None => ok = false,
                    }
                }
            } else {
                ok = false;
            }
        }
        None => {
            r.problem(&join(path, "routes"), "missing: at least one route");
            ok = false;
        }
    }
    let storm = f.get("storm").map_or(Some(StormPolicy::default()), |(v, p)| read_storm(r, v, &p));
    let mut maintenance = Vec::new();
    if let Some((v, p)) = f.get("maintenance") {
        match r.list(v, &p) {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    match read_maintenance(r, item, &format!("{p}[{i}]")) {
                        Some(m) => maintenance.push(m),
                        None => ok = false,
                    }
                }
            }
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(NotifyConfig { group_id: group_id?, providers, routes, storm: storm?, maintenance })
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
