//! `sitemon notify` end to end: incident events on a real events topic, deliveries in a real
//! PostgreSQL, and a local receiver speaking the webhook, Slack and PagerDuty shapes (including
//! 429 with `Retry-After`, 500 and a permanent 400). Every message arrives once per delivery id,
//! in order per incident, secrets stay out of the database and the log, a maintenance window
//! silences (recorded, not sent), a second reading of the topic sends nothing again, and a storm
//! of openings is one grouped message.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sitemon::domain::{EndReason, EventKind, Incident, IncidentEvent};

use crate::harness::{ONE_AT_A_TIME, Setup, rows};
use crate::receiver::{Answer, Receiver};
use crate::support::{describe, sitemon, unique};

pub const PD_KEY: &str = "R0UTINGKEY5ECRET";
pub const TOKEN: &str = "hook-t0ken-5ecret";

pub fn incident(site: &str, region: Option<&str>, started: chrono::DateTime<Utc>) -> Incident {
    Incident {
        incident_id: Incident::id_for(site, region, started),
        kind: sitemon::domain::IncidentKind::Down,
        site_id: site.into(),
        region: region.map(Into::into),
        url: format!("https://{site}.test/"),
        started_at: started,
        confirmed_at: started + TimeDelta::seconds(20),
        ended_at: None,
        end_reason: None,
        regions: vec!["eu".into()],
        failure_kind: None,
        error: Some("connection refused".into()),
        failed_checks: 3,
    }
}

pub fn opened(site: &str, region: Option<&str>) -> IncidentEvent {
    let started = Utc::now() - TimeDelta::minutes(5);
    let i = incident(site, region, chrono::DateTime::from_timestamp(started.timestamp(), 0).unwrap());
    IncidentEvent::new(EventKind::Opened, i.confirmed_at, &i)
}

pub fn closed(open: &IncidentEvent) -> IncidentEvent {
    let mut i = open.incident.clone();
    i.ended_at = Some(i.started_at + TimeDelta::minutes(2));
    i.end_reason = Some(EndReason::Recovered);
    IncidentEvent::new(EventKind::Closed, i.ended_at.unwrap(), &i)
}

pub async fn publish(bootstrap: &str, topic: &str, events: &[IncidentEvent]) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let payloads: Vec<Vec<u8>> = events.iter().map(sitemon::wire::encode_event).collect();
    let sends = events.iter().zip(&payloads).map(|(e, p)| {
        producer.send(FutureRecord::to(topic).key(&e.incident.site_id).payload(p), Duration::from_secs(30))
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| e).expect("produce");
    }
}

pub fn config(s: &Setup, events_topic: &str, group: &str, notify: &str) -> String {
    s.write(
        &format!("{group}.yaml"),
        &format!(
            "kafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  events_topic: {events_topic}\n\
             \x20 properties:\n    session.timeout.ms: 6000\n    heartbeat.interval.ms: 1000\n\
             postgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nnotify:\n  group_id: {group}\n{notify}"
        ),
    )
}

pub async fn notify(s: &Setup, cfg: &str) -> String {
    let mut env = s.env().to_vec();
    env.extend([("PD_KEY", PD_KEY), ("HOOK_TOKEN", TOKEN)]);
    let out = sitemon(&["notify", "-c", cfg, "--exit-when-idle", "3s"], &env, Duration::from_secs(120)).await;
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_every_provider_once_in_order_and_silences_hold() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let rx = Receiver::start().await;
    // flaky: throttled, then down, then fine; bad: refuses for good (a wrong routing key).
    rx.script(
        "/flaky",
        vec![Answer::new(429, "slow down").retry_after("1"), Answer::new(500, "oops"), Answer::new(200, "")],
    );
    rx.always("/bad", Answer::new(400, r#"{"status":"invalid event","message":"Event object is invalid"}"#));
    let topic = unique("sitemon-notify-events");
    let shop = opened("shop", None);
    let api = opened("api", Some("eu"));
    let db = opened("db-1", None);
    publish(&s.bootstrap, &topic, &[shop.clone(), api.clone(), db.clone(), closed(&shop)]).await;
    let from = (Utc::now() - TimeDelta::hours(1)).to_rfc3339();
    let until = (Utc::now() + TimeDelta::hours(1)).to_rfc3339();
    let providers = format!(
        "  providers:\n\
         \x20   hook: {{type: webhook, url: '{}', headers: {{Authorization: 'Bearer ${{HOOK_TOKEN}}'}}}}\n\
         \x20   slack: {{type: slack, url: '{}'}}\n\
         \x20   pd: {{type: pagerduty, url: '{}', routing_key: '${{PD_KEY}}'}}\n\
         \x20   flaky: {{type: webhook, url: '{}'}}\n\
         \x20   bad: {{type: webhook, url: '{}'}}\n\
         \x20 routes:\n\
         \x20   - {{name: sites, sites: [shop, 'db-*'], providers: [hook, slack, pd, flaky, bad]}}\n\
         \x20   - {{name: regions, scope: region, providers: [hook]}}\n\
         \x20 maintenance:\n\
         \x20   - {{sites: ['db-*'], from: '{from}', until: '{until}', reason: 'db upgrade'}}\n",
        rx.url("/hook"),
        rx.url("/slack"),
        rx.url("/pagerduty"),
        rx.url("/flaky"),
        rx.url("/bad"),
    );
    let cfg = config(&s, &topic, &unique("notify"), &providers);
    let log = notify(&s, &cfg).await;

    // The webhook: shop opened and closed (site-wide route), api's region incident (regions
    // route), each with its delivery id as the idempotency key and the configured header.
    let hook = rx.received("/hook");
    let kinds: Vec<(&str, &str)> = hook
        .iter()
        .map(|r| (r.body["type"].as_str().unwrap(), r.body["event"]["incident"]["site_id"].as_str().unwrap()))
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [("incident.closed", "shop"), ("incident.opened", "api"), ("incident.opened", "shop")],
        "{kinds:?}"
    );
    let shop_open = kinds.iter().position(|k| *k == ("incident.opened", "shop")).unwrap();
    let shop_close = kinds.iter().position(|k| *k == ("incident.closed", "shop")).unwrap();
    assert!(shop_open < shop_close, "an incident's opening before its closing: {kinds:?}");
    for r in &hook {
        assert_eq!(
            r.headers.get("idempotency-key"),
            r.body["delivery_id"].as_str().map(str::to_owned).as_ref()
        );
        assert_eq!(r.headers.get("authorization").map(String::as_str), Some(&*format!("Bearer {TOKEN}")));
        assert_eq!(r.headers.get("content-type").map(String::as_str), Some("application/json"));
    }
    assert_eq!(hook.iter().filter(|r| r.body["event"]["incident"]["region"] == "eu").count(), 1);

    // Slack: text, opened then closed.
    let slack: Vec<String> =
        rx.received("/slack").iter().map(|r| r.body["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert!(slack[0].starts_with("*DOWN: shop*") && slack[1].starts_with("*UP: shop*"), "{slack:?}");

    // PagerDuty: trigger then resolve of one alert, keyed by the incident, with the routing key.
    let pd = rx.received("/pagerduty");
    let actions: Vec<(&str, &str, &str)> = pd
        .iter()
        .map(|r| {
            (
                r.body["event_action"].as_str().unwrap(),
                r.body["dedup_key"].as_str().unwrap(),
                r.body["routing_key"].as_str().unwrap(),
            )
        })
        .collect();
    let key = shop.incident.incident_id.to_string();
    assert_eq!(actions, [("trigger", key.as_str(), PD_KEY), ("resolve", key.as_str(), PD_KEY)]);

    // The flaky provider: the opening tried until accepted under one idempotency key, and the
    // closing only after it.
    let flaky = rx.received("/flaky");
    let statuses: Vec<(u16, &str)> =
        flaky.iter().map(|r| (r.status, r.body["type"].as_str().unwrap())).collect();
    assert_eq!(
        statuses,
        [
            (429, "incident.opened"),
            (500, "incident.opened"),
            (200, "incident.opened"),
            (200, "incident.closed")
        ]
    );
    let keys: Vec<&String> = flaky[..3].iter().map(|r| &r.headers["idempotency-key"]).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "the same delivery id on every attempt: {keys:?}");

    // The provider that refuses: asked once per message, recorded as failed with its answer.
    assert_eq!(rx.received("/bad").len(), 2);
    let failed = rows(&s.db, "SELECT count(*) FROM notify_deliveries WHERE provider = 'bad' AND state = 'FAILED' AND answer LIKE '400 Bad Request: %Event object is invalid%'").await;
    assert_eq!(failed, 2);

    // db-1 is in maintenance: nothing sent, each delivery recorded as silenced.
    assert!(rx.all().iter().all(|r| !r.body.to_string().contains("db-1")), "nothing about db-1 sent");
    let silenced = rows(&s.db, "SELECT count(*) FROM notify_deliveries WHERE site_id = 'db-1' AND state = 'SILENCED' AND silenced_by = 'db upgrade'").await;
    assert_eq!(silenced, 5, "one per provider of the route");
    let sent = rows(&s.db, "SELECT count(*) FROM notify_deliveries WHERE state = 'SENT'").await;
    assert_eq!(sent, 3 + 2 + 2 + 2, "hook, slack, pd, flaky");

    // Secrets: not in the database, not in the log.
    let leaked = rows(&s.db, &format!("SELECT count(*) FROM notify_deliveries WHERE body::text LIKE '%{PD_KEY}%' OR body::text LIKE '%{TOKEN}%' OR coalesce(answer, '') LIKE '%{TOKEN}%'")).await;
    assert_eq!(leaked, 0);
    assert!(!log.contains(PD_KEY) && !log.contains(TOKEN), "{log}");

    // `sitemon status` shows the newest alert about an open incident: here the closing's last
    // delivery (to `bad`, refused).
    use sitemon::ports::DeliveryStore;
    let store = sitemon::store::PgStore::connect(&sitemon::config::PostgresConfig {
        url: sitemon::config::Secret::new(s.db.clone()),
        max_connections: 1,
    })
    .unwrap();
    let last =
        store.deliveries().last_deliveries(&[shop.incident.incident_id, uuid::Uuid::nil()]).await.unwrap();
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!((last[0].provider.as_str(), last[0].state.as_str()), ("bad", "FAILED"));

    // Read again by a second group (a replay): the same deliveries, already recorded, so nothing
    // is sent again.
    let before = rx.all().len();
    let again = config(&s, &topic, &unique("notify-replay"), &providers);
    notify(&s, &again).await;
    assert_eq!(rx.all().len(), before, "a replay sends nothing twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_a_thousand_openings_is_one_grouped_message() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let rx = Receiver::start().await;
    let topic = unique("sitemon-notify-storm");
    let events: Vec<IncidentEvent> = (0..1000).map(|i| opened(&format!("site-{i:04}"), None)).collect();
    publish(&s.bootstrap, &topic, &events).await;
    let providers = format!(
        "  providers:\n    hook: {{type: webhook, url: '{}'}}\n\
         \x20 routes:\n    - {{name: all, providers: [hook]}}\n\
         \x20 storm: {{threshold: 10, window: 3s, update_every: 1h}}\n",
        rx.url("/hook")
    );
    let cfg = config(&s, &topic, &unique("notify-storm"), &providers);
    notify(&s, &cfg).await;
    let got = rx.received("/hook");
    let kinds: Vec<&str> = got.iter().map(|r| r.body["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "incident.opened").count(),
        10,
        "up to the threshold one by one"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "storm.started").count(), 1, "{kinds:?}");
    // Nothing opened for the window: its end, with what is still open (all of them).
    assert_eq!(kinds.last(), Some(&"storm.ended"), "{kinds:?}");
    assert_eq!(kinds.len(), 12, "not a thousand messages: {kinds:?}");
    let started = got.iter().find(|r| r.body["type"] == "storm.started").unwrap();
    assert_eq!(started.body["storm"]["opened"]["count"], 11);
    assert_eq!(started.body["storm"]["opened"]["named"].as_array().unwrap().len(), 10);
    let ended = got.last().unwrap();
    assert_eq!(
        (ended.body["storm"]["open"]["count"].as_i64(), ended.body["storm"]["cleared"].as_bool()),
        (Some(1000), Some(false))
    );
    assert_eq!(rows(&s.db, "SELECT count(*) FROM notify_deliveries").await, 12);
}

pub fn hook_config(s: &Setup, topic: &str, group: &str, rx: &Receiver, extra: &str) -> String {
    let providers = format!(
        "  providers:\n    hook: {{type: webhook, url: '{}', timeout: 2s}}\n    other: {{type: webhook, url: '{}'}}\n\
         \x20 routes:\n    - {{name: all, providers: [hook, other]}}\n  storm: {{threshold: 1000}}\n{extra}",
        rx.url("/hook"),
        rx.url("/other")
    );
    config(s, topic, group, &providers)
}

/// The delivery ids answered 2xx on `path`, each once, and how many requests there were.
pub fn accepted(rx: &Receiver, path: &str) -> (std::collections::BTreeSet<String>, usize) {
    let got = rx.received(path);
    let ok = got.iter().filter(|r| r.status < 300).map(|r| r.headers["idempotency-key"].clone()).collect();
    (ok, got.len())
}

pub fn storm_of(n: usize) -> Vec<IncidentEvent> {
    (0..n)
        .flat_map(|i| {
            let o = opened(&format!("site-{i:03}"), None);
            [o.clone(), closed(&o)]
        })
        .collect()
}

/// `sitemon silence add|list|remove` on the real database, read by `sitemon notify`: a silenced
/// site's messages are recorded with the reason and not sent, the others go out; a bad pattern
/// is a usage error before anything connects.
#[tokio::test(flavor = "multi_thread")]
async fn a_silence_added_on_the_command_line_holds_back_its_sites() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let rx = Receiver::start().await;
    let topic = unique("sitemon-notify-silence");
    let cfg = hook_config(&s, &topic, &unique("notify-silence"), &rx, "");
    let env = s.env();
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sitemon(&args, &env, Duration::from_secs(60)).await
    };
    let bad = run(vec![
        "silence".into(),
        "add".into(),
        "-c".into(),
        cfg.clone(),
        "--site".into(),
        "shop-[".into(),
        "--for".into(),
        "1h".into(),
        "--reason".into(),
        "x".into(),
    ])
    .await;
    assert_eq!(bad.status.code(), Some(64), "{}", describe(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--site: `shop-[` is not a site pattern"),
        "{}",
        describe(&bad)
    );

    let added = run(vec![
        "silence".into(),
        "add".into(),
        "-c".into(),
        cfg.clone(),
        "--site".into(),
        "shop*".into(),
        "--for".into(),
        "1h".into(),
        "--reason".into(),
        "deploy".into(),
    ])
    .await;
    assert!(added.status.success(), "{}", describe(&added));
    let id = String::from_utf8_lossy(&added.stdout).trim().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "prints its id: {id:?}");
    let list = run(vec!["silence".into(), "list".into(), "-c".into(), cfg.clone()]).await;
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(text.contains(&id) && text.contains("shop*") && text.contains("deploy"), "{text}");

    // Confirmed now, under the silence (one confirmed before it began would be sent: its
    // closing must follow its opening).
    let now = |site: &str| {
        let i = incident(site, None, chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap());
        IncidentEvent::new(EventKind::Opened, i.confirmed_at, &i)
    };
    let (shop, api) = (now("shop-eu"), now("api"));
    publish(&s.bootstrap, &topic, &[shop.clone(), api.clone()]).await;
    notify(&s, &cfg).await;
    let sites: Vec<String> = rx
        .all()
        .iter()
        .map(|r| r.body["event"]["incident"]["site_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sites, ["api", "api"], "only the site not silenced, to both providers");
    let silenced = rows(&s.db, "SELECT count(*) FROM notify_deliveries WHERE site_id = 'shop-eu' AND state = 'SILENCED' AND silenced_by = 'deploy'").await;
    assert_eq!(silenced, 2);

    let removed = run(vec!["silence".into(), "remove".into(), "-c".into(), cfg.clone(), id.clone()]).await;
    assert!(removed.status.success(), "{}", describe(&removed));
    let list = run(vec!["silence".into(), "list".into(), "-c".into(), cfg.clone()]).await;
    assert_eq!(String::from_utf8_lossy(&list.stdout), "no silences\n");
    let again = run(vec!["silence".into(), "remove".into(), "-c".into(), cfg.clone(), id]).await;
    assert_eq!(again.status.code(), Some(1), "removing it twice is an error: {}", describe(&again));
}

/// `sitemon notify test --route`: one test message to each provider of the route, now, each
/// answer printed; PagerDuty's test alert resolved right after; exit 1 when one refused; an
/// unknown route is a usage error. Needs neither Kafka nor the database.
#[tokio::test(flavor = "multi_thread")]
async fn notify_test_sends_one_message_to_each_provider_of_the_route() {
    let s = Setup::new().await;
    let rx = Receiver::start().await;
    rx.always("/bad", Answer::new(403, "invalid token"));
    let cfg = s.write(
        "test.yaml",
        &format!(
            "notify:\n  providers:\n    hook: {{type: webhook, url: '{}'}}\n    slack: {{type: slack, url: '{}'}}\n\
             \x20   pd: {{type: pagerduty, url: '{}', routing_key: K3Y}}\n    bad: {{type: webhook, url: '{}'}}\n\
             \x20 routes:\n    - {{name: oncall, providers: [hook, slack, pd]}}\n    - {{name: broken, providers: [bad]}}\n",
            rx.url("/hook"),
            rx.url("/slack"),
            rx.url("/pagerduty"),
            rx.url("/bad")
        ),
    );
    let out =
        sitemon(&["notify", "test", "-c", &cfg, "--route", "oncall"], &[], Duration::from_secs(60)).await;
    assert!(out.status.success(), "{}", describe(&out));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].starts_with("hook\tSENT\t200") && lines[2].starts_with("pd\tSENT\t202"), "{lines:?}");
    assert!(lines[3].starts_with("pd (resolve)\tSENT\t202"), "the resolve's answer too: {lines:?}");
    assert_eq!(rx.received("/hook")[0].body["type"], "test");
    assert!(
        rx.received("/slack")[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("*sitemon test message (route oncall)*")
    );
    let pd: Vec<(String, String)> = rx
        .received("/pagerduty")
        .iter()
        .map(|r| {
            (
                r.body["event_action"].as_str().unwrap().to_owned(),
                r.body["dedup_key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(pd.len(), 2, "trigger then resolve: {pd:?}");
    assert_eq!((pd[0].0.as_str(), pd[1].0.as_str()), ("trigger", "resolve"));
    assert_eq!(pd[0].1, pd[1].1);
    let keys: Vec<String> =
        rx.received("/pagerduty").iter().map(|r| r.headers["idempotency-key"].clone()).collect();
    assert_ne!(keys[0], keys[1], "the resolve is a request of its own, not a repeat of the trigger");
    assert_eq!(rx.received("/pagerduty")[0].body["payload"]["severity"], "info");

    let refused =
        sitemon(&["notify", "test", "-c", &cfg, "--route", "broken"], &[], Duration::from_secs(60)).await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stdout).starts_with("bad\tFAILED\t403 Forbidden: invalid token")
    );
    let unknown =
        sitemon(&["notify", "test", "-c", &cfg, "--route", "nope"], &[], Duration::from_secs(60)).await;
    assert_eq!(unknown.status.code(), Some(64), "{}", describe(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("no route named `nope`; the routes: oncall, broken")
    );
}
