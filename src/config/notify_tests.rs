//! Tests of the `notify` config section.

use std::time::Duration;

use super::*;
use crate::config::{ConfigError, PAGERDUTY_URL, ProviderKind, SmtpTls, parse};

fn env(name: &str) -> Option<String> {
    (name == "SLACK_URL").then(|| "https://hooks.slack.test/services/T0/B0/s3cr3t".to_owned())
}

fn check(text: &str) -> Result<NotifyConfig, ConfigError> {
    parse(&format!("region: eu\n{text}"), std::path::Path::new("n.yaml"), &env).map(|c| c.notify.unwrap())
}

fn problems(text: &str) -> Vec<String> {
    check(text).unwrap_err().problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect()
}

#[test]
fn a_first_alert_in_five_lines() {
    let n = check(
        "notify:\n  providers:\n    team: {type: slack, url: '${SLACK_URL}'}\n  routes:\n    - {name: all, providers: [team]}\n",
    )
    .unwrap();
    assert_eq!(n.group_id, "sitemon-notify");
    assert_eq!((n.providers[0].name.as_str(), n.providers[0].kind.as_str()), ("team", "slack"));
    assert_eq!(n.providers[0].url.expose(), "https://hooks.slack.test/services/T0/B0/s3cr3t");
    let r = &n.routes[0];
    assert_eq!((r.scope, r.send_on_resolved, r.sites.len(), r.repeat_every), (Scope::Site, true, 0, None));
    assert_eq!(n.storm, StormPolicy::default());
    assert_eq!(n.providers[0].spacing, None, "no rate limit unless one is set");
    assert!(!format!("{n:?}").contains("s3cr3t"), "secrets stay out of Debug");
}

#[test]
fn a_rate_limit_is_the_least_time_between_requests() {
    let n = check(
        "notify:\n  providers:\n    a: {type: slack, url: 'http://x', rate_limit: 1/s}\n\
         \x20   b: {type: webhook, url: 'http://x', rate_limit: 30/min}\n\
         \x20   c: {type: pagerduty, routing_key: k, rate_limit: 100/h}\n\
         \x20 routes:\n    - {name: all, providers: [a, b, c]}\n",
    )
    .unwrap();
    let spacing: Vec<Option<Duration>> = n.providers.iter().map(|p| p.spacing).collect();
    assert_eq!(
        spacing,
        [Some(Duration::from_secs(1)), Some(Duration::from_secs(2)), Some(Duration::from_secs(36))]
    );
}

#[test]
fn every_part_of_the_section() {
    let n = check(
        "notify:\n  group_id: alerts\n  providers:\n\
         \x20   hook: {type: webhook, url: 'http://127.0.0.1:9/h', headers: {Authorization: Bearer x}, timeout: 3s}\n\
         \x20   pd: {type: pagerduty, routing_key: R0UT3}\n\
         \x20 routes:\n\
         \x20   - {name: shop, sites: ['shop-*', api], scope: any, send_on_resolved: false, repeat_every: 1h, providers: [pd, hook]}\n\
         \x20 storm: {threshold: 50, window: 2m, update_every: 10m}\n\
         \x20 maintenance:\n\
         \x20   - {sites: ['db-*'], weekly: {days: [sun, Wednesday], at: '02:00', for: 2h}, reason: vacuum}\n\
         \x20   - {from: '2026-12-24T00:00:00Z', until: '2026-12-26T00:00:00+01:00'}\n",
    )
    .unwrap();
    assert_eq!(n.group_id, "alerts");
    let ProviderKind::PagerDuty { routing_key } = &n.providers[1].kind else { panic!() };
    assert_eq!((routing_key.expose(), n.providers[1].url.expose()), ("R0UT3", PAGERDUTY_URL));
    let ProviderKind::Webhook { headers } = &n.providers[0].kind else { panic!() };
    assert_eq!((headers[0].0.as_str(), headers[0].1.expose()), ("Authorization", "Bearer x"));
    assert_eq!(n.providers[0].timeout, Duration::from_secs(3));
    let r = &n.routes[0];
    assert_eq!(r.sites.iter().map(Pattern::as_str).collect::<Vec<_>>(), ["shop-*", "api"]);
    assert_eq!(
        (r.scope, r.send_on_resolved, r.repeat_every),
        (Scope::Any, false, Some(Duration::from_secs(3600)))
    );
    assert_eq!(r.providers, ["pd", "hook"]);
    assert_eq!(n.storm.threshold, 50);
    let Window::Weekly { days, .. } = &n.maintenance[0].window else { panic!() };
    assert_eq!(days, &[Weekday::Sun, Weekday::Wed]);
    assert_eq!(n.maintenance[1].reason, "maintenance");
    let Window::Once { until, .. } = n.maintenance[1].window else { panic!() };
    assert_eq!(until.to_rfc3339(), "2026-12-25T23:00:00+00:00");
}

#[test]
fn every_problem_at_once_with_its_path() {
    let p = problems(
        "notify:\n  providers:\n\
         \x20   a: {type: sms, url: 'http://x'}\n\
         \x20   b: {type: slack, url: 'not a url s3cr3t'}\n\
         \x20   c: {type: pagerduty}\n\
         \x20   d: {type: webhook, url: 'http://x', headers: {'bad header': v, X-Token: \"s3cr3t\\n\"}}\n\
         \x20   e: {type: slack, url: 'http://x', rate_limit: 'fast'}\n\
         \x20   f: {type: slack, url: 'http://x', rate_limit: 0/s}\n\
         \x20 routes:\n\
         \x20   - {name: r, sites: ['shop-['], scope: world, providers: [b, nope, b]}\n\
         \x20   - {name: r, providers: [d]}\n\
         \x20   - {name: empty, sites: [], providers: []}\n\
         \x20 storm: {threshold: 0}\n\
         \x20 maintenance:\n\
         \x20   - {from: '2026-12-26T00:00:00Z', until: '2026-12-24T00:00:00Z'}\n\
         \x20   - {weekly: {days: [someday], at: '25:00'}}\n\
         \x20   - {reason: forgot}\n",
    );
    let want = [
        "notify.providers.a.type: unknown provider type `sms`",
        "notify.providers.b.url: expected an http:// or https:// url",
        "notify.providers.c.routing_key: missing",
        "notify.providers.d.headers.bad header: `bad header` is not a valid header name",
        "notify.providers.e.rate_limit: `fast` is not a rate; use e.g. `1/s`, `30/min`, `100/h`",
        "notify.providers.f.rate_limit: `0/s` is not a rate",
        "notify.routes[0].sites[0]: not a site pattern",
        "notify.routes[0].scope: expected one of: site, region, any",
        "notify.routes[0].providers[1]: no provider named `nope`",
        "notify.routes[0].providers[2]: `b` is named twice",
        "notify.routes[1].name: a route named `r` is already defined",
        "notify.routes[2].providers: must name at least one provider",
        "notify.routes[2].sites: an empty list; leave `sites` out for every site",
        "notify.providers.d.headers.X-Token: the value is not a valid header value",
        "notify.storm.threshold: 0 is out of range",
        "notify.maintenance[0].until: must be later than `from`",
        "notify.maintenance[1].weekly.days[0]: expected a day",
        "notify.maintenance[1].weekly.at: expected a time of day",
        "notify.maintenance[1].weekly.for: missing",
        "notify.maintenance[2]: needs `from` and `until`",
    ];
    for w in want {
        assert!(p.iter().any(|p| p.starts_with(w)), "missing {w:?} in {p:#?}");
    }
    assert!(!p.iter().any(|p| p.contains("s3cr3t")), "a bad url is not quoted: {p:#?}");
}

#[test]
fn the_example_configs_notify_section_is_valid_once_uncommented() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/example_config/sitemon.yaml")).unwrap();
    let start = text.find("# notify:").expect("the example has a notify section");
    let block: String =
        text[start..].lines().map(|l| l.strip_prefix("# ").unwrap_or(l)).collect::<Vec<_>>().join("\n");
    let env = |name: &str| Some(format!("https://{}.test/x", name.to_lowercase()));
    let n = parse(&format!("region: eu\n{block}\n"), std::path::Path::new("example.yaml"), &env)
        .unwrap()
        .notify
        .unwrap();
    assert_eq!((n.providers.len(), n.routes.len(), n.maintenance.len()), (2, 2, 1));
}

#[test]
fn email_providers_take_their_own_keys() {
    let n = check(
        "notify:\n  providers:\n    mail: {type: email, host: smtp.test, username: u, password: p, from: 'sitemon <a@b.test>', to: [c@d.test]}\n\
         \x20 routes: [{name: r, providers: [mail]}]\n",
    )
    .unwrap();
    let ProviderKind::Email(e) = &n.providers[0].kind else { panic!() };
    assert_eq!((e.port, e.tls, e.to.len()), (587, SmtpTls::StartTls, 1));
    assert_eq!(n.providers[0].url.expose(), "smtp://smtp.test:587");
    let p = problems(
        "notify:\n  providers:\n\
         \x20   a: {type: email, url: 'http://x', tls: none, username: u, password: p, from: 'not an address', to: []}\n\
         \x20   b: {type: email, tls: tls, password: p, to: [ok@x.test, 'bad@']}\n\
         \x20   c: {type: slack, url: 'http://x', host: smtp.test}\n\
         \x20 routes: [{name: r, providers: [a]}]\n",
    );
    let want = [
        "notify.providers.a.url: a email provider has no `url`",
        "notify.providers.a.host: missing",
        "notify.providers.a.password: a password is never sent without TLS",
        "notify.providers.a.from: `not an address` is not an email address",
        "notify.providers.a.to: name at least one recipient",
        "notify.providers.b.username: missing: `password` needs its user",
        "notify.providers.b.from: missing",
        "notify.providers.b.to[1]: `bad@` is not an email address",
        "notify.providers.c.host: a slack provider has no `host`",
    ];
    for w in want {
        assert!(p.iter().any(|p| p.starts_with(w)), "missing {w:?} in {p:#?}");
    }
}
