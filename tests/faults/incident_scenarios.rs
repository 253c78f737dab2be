//! Operator scenarios of issue #17 ("incidents an operator can trust") through the real
//! `sitemon consumer` on PostgreSQL: crafted results are published to Kafka, each stream is stored
//! twice (`batch_size: 1` and `batch_size: 500`, own group, own database, own events topic), and
//! both must give the same incidents and events — those of the whole stream derived in one go —
//! and what the scenario promises the operator.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sitemon::domain::{CheckResult, CheckStatus, EventKind, FailureKind, SiteTracks, derive_incidents};

use crate::harness::{ONE_AT_A_TIME, Setup, rows, topic_payloads};
use crate::support::{describe, sitemon, unique};

const SITE: &str = "scenario-site";
const INTERVAL: TimeDelta = TimeDelta::seconds(10);

/// A time `secs` from now, to the whole second.
fn now_plus(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp() + secs, 0).unwrap()
}

/// One result per char of `pattern` from `from` on, one interval apart: `+` success, `x` failure.
/// Thresholds: 3 failures open, 1 success closes.
fn results(region: &str, from: DateTime<Utc>, pattern: &str) -> Vec<CheckResult> {
    pattern
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let at = from + INTERVAL * i as i32;
            let mut r = CheckResult::new(SITE, "http://scenario.test/", region, at, at, CheckStatus::Success);
            if c == 'x' {
                r.fail(FailureKind::Connect, format!("refused at {i}"));
            }
            (r.interval_ms, r.down_after, r.up_after) = (Some(10_000), Some(3), Some(1));
            r
        })
        .collect()
}

/// By slot, each slot's results in region order: the partition of producers with right clocks.
fn by_slot(mut rs: Vec<CheckResult>) -> Vec<CheckResult> {
    rs.sort_by(|a, b| (a.scheduled_at, &a.region).cmp(&(b.scheduled_at, &b.region)));
    rs
}

/// An incident as stored: id, region, start, confirmation, end, end reason, failed checks,
/// regions.
type Incident = (
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    i64,
    Vec<String>,
);
/// An event as stored (in outbox order): id, kind, region, incident id, end reason.
type Event = (String, String, Option<String>, String, Option<String>);

/// What one consumer run left.
#[derive(Debug)]
struct Outcome {
    batch_size: usize,
    /// By incident id.
    incidents: Vec<Incident>,
    events: Vec<Event>,
    /// The tracks in `site_tracks`' rows: the site's own (region '') and its regions'.
    tracks: Vec<String>,
    /// The events topic, in order, decoded: (event id, kind, region).
    on_topic: Vec<(String, EventKind, Option<String>)>,
    /// `site_status` rows: region, status, consecutive failures, scheduled_at.
    status: Vec<(String, String, i32, DateTime<Utc>)>,
}

impl Outcome {
    fn incident(&self, region: Option<&str>) -> Vec<&Incident> {
        self.incidents.iter().filter(|i| i.1.as_deref() == region).collect()
    }
}

/// Publishes `all` in this order (one site: one partition) to a new topic; returns the topic.
async fn publish(s: &Setup, all: &[CheckResult]) -> String {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &s.bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let payloads: Vec<Vec<u8>> = all.iter().map(sitemon::wire::encode).collect();
    // Sent in order and awaited together: the idempotent order of one producer per partition.
    let sends = all.iter().zip(&payloads).map(|(r, payload)| {
        producer.send(FutureRecord::to(&s.topic).key(&r.site_id).payload(payload), Duration::from_secs(30))
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| e).expect("produce");
    }
    s.topic.clone()
}

/// Stores the topic with a consumer of `batch_size` into a fresh database until it is idle, and
/// reads back what it derived and published.
async fn consume(topic: &str, n: usize, batch_size: usize, consumer_extra: &str) -> Outcome {
    let s = Setup::new().await;
    let events_topic = unique("sitemon-scenario-events");
    let cfg = s.write(
        "consumer.yaml",
        &format!(
            "region: faults\nkafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {topic}\n  events_topic: {events_topic}\n  group_id: {}\n\
             \x20 properties:\n    session.timeout.ms: 6000\n    heartbeat.interval.ms: 1000\n\
             postgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_size: {batch_size}\n  batch_wait: 100ms\n{consumer_extra}",
            unique("scenario")
        ),
    );
    let out =
        sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &s.env(), Duration::from_secs(120))
            .await;
    assert!(out.status.success(), "batch_size {batch_size}: {}", describe(&out));
    let stored = rows(&s.db, "SELECT count(*) FROM check_results").await;
    let dead = rows(&s.db, "SELECT count(*) FROM dead_letters").await;
    assert_eq!((stored, dead), (n as i64, 0), "batch_size {batch_size}: every record stored, none refused");
    let unpublished = rows(&s.db, "SELECT count(*) FROM incident_events WHERE published_at IS NULL").await;
    assert_eq!(unpublished, 0, "batch_size {batch_size}: every event published before the exit");

    let mut c = crate::support::connect(&s.db).await;
    let incidents: Vec<Incident> = sqlx::query_as(
        "SELECT incident_id::text, region, started_at, confirmed_at, ended_at, end_reason, failed_checks, \
         regions FROM incidents ORDER BY incident_id",
    )
    .fetch_all(&mut c)
    .await
    .expect("incidents");
    let events: Vec<Event> = sqlx::query_as(
        "SELECT event_id::text, kind, region, incident_id::text, end_reason FROM incident_events ORDER BY seq",
    )
    .fetch_all(&mut c)
    .await
    .expect("events");
    let tracks: Vec<String> = sqlx::query_scalar(
        "SELECT e->>'region' AS region FROM site_tracks, json_array_elements(tracks::json) AS e ORDER BY region",
    )
        .fetch_all(&mut c)
        .await
        .expect("tracks");
    let status = sqlx::query_as(
        "SELECT region, status, consecutive_failures, scheduled_at FROM site_status ORDER BY region",
    )
    .fetch_all(&mut c)
    .await
    .expect("site_status");
    let want = events.len();
    let on_topic = tokio::task::spawn_blocking(move || {
        topic_payloads(&events_topic, want)
            .iter()
            .map(|p| {
                let e = sitemon::wire::decode_event(p).expect("an event sitemon can read");
                (e.event_id.to_string(), e.kind, e.incident.region)
            })
            .collect()
    })
    .await
    .expect("read the events topic");
    Outcome { batch_size, incidents, events, tracks, on_topic, status }
}

/// The stream published as given, stored with `batch_size` 1 and 500: both runs are checked
/// against each other and against the whole stream derived in one go (with the consumer's time
/// bounds); returns both for the scenario's own expectations.
async fn run(all: Vec<CheckResult>, consumer_extra: &str) -> [Outcome; 2] {
    let s = Setup::new().await;
    let topic = publish(&s, &all).await;
    let (one, many) = tokio::join!(
        consume(&topic, all.len(), 1, consumer_extra),
        consume(&topic, all.len(), 500, consumer_extra)
    );

    assert_eq!(one.incidents, many.incidents, "the same incidents whatever the batch size");
    assert_eq!(one.events, many.events, "the same events, in the same order, whatever the batch size");

    // What the whole stream gives in one go, with the time bounds the consumers judged with.
    let text = format!("region: faults\nconsumer:\n  batch_size: 1\n{consumer_extra}");
    let cfg = sitemon::config::parse(&text, std::path::Path::new("scenario.yaml"), &|_| None)
        .expect("the consumer section loads");
    let refs: Vec<&CheckResult> = all.iter().collect();
    let want = derive_incidents(&mut Vec::<SiteTracks>::new(), &refs, &cfg.consumer.judging());
    let want_events: Vec<(String, &str)> =
        want.events.iter().map(|e| (e.event_id.to_string(), e.kind.as_str())).collect();
    // (The outbox keeps one row per event id: a repeated id would show as an event missing.)
    let mut ids: Vec<&str> = want_events.iter().map(|e| e.0.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), want_events.len(), "every event its own id: {want_events:?}");
    for o in [&one, &many] {
        let got: Vec<(String, &str)> = o.events.iter().map(|e| (e.0.clone(), e.1.as_str())).collect();
        assert_eq!(got, want_events, "batch_size {}: the events of the whole stream in one go", o.batch_size);
        // Every event on the topic (a repeat allowed, a loss not), and none that is not stored.
        let mut published: Vec<&str> = o.on_topic.iter().map(|e| e.0.as_str()).collect();
        published.sort_unstable();
        published.dedup();
        assert_eq!(published, ids, "batch_size {}: the events topic holds the outbox", o.batch_size);
    }
    [one, many]
}

/// Issue #17's first scenario. Regions a, b, c; b is down before slot T; at T a fails for the
/// 3rd time (down), b recovers and c fails for the 3rd time (down), published a, b, c. Judged
/// as one slot, the site goes down once, at T, and stays down.
#[tokio::test(flavor = "multi_thread")]
async fn three_regions_changing_at_one_slot_open_the_site_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let base = now_plus(-2 * 3600);
    // Slot 4 is T; slots 5 and 6 keep a and c failing and b up (the site stays down).
    let mut all = results("a", base, "++xxxxx");
    all.extend(results("b", base, "+xxx+++"));
    all.extend(results("c", base, "++xxxxx"));
    let t = base + INTERVAL * 4;
    for o in run(by_slot(all), "").await {
        let b = o.batch_size;
        let site = o.incident(None);
        assert_eq!(site.len(), 1, "batch_size {b}: one site-wide incident: {:?}", o.incidents);
        let (_, _, started, confirmed, ended, _, _, regions) = site[0];
        assert_eq!(*confirmed, t, "batch_size {b}: confirmed at T");
        assert_eq!(*started, base + INTERVAL * 2, "batch_size {b}: since a and c were both failing");
        assert_eq!(*ended, None, "batch_size {b}: still open");
        assert_eq!(regions, &["a".to_owned(), "c".to_owned()], "batch_size {b}");
        let site_events: Vec<&str> =
            o.events.iter().filter(|e| e.2.is_none()).map(|e| e.1.as_str()).collect();
        assert_eq!(site_events, ["OPENED"], "batch_size {b}: exactly one site-wide event: {:?}", o.events);
        let regional: Vec<(&str, Option<&str>)> =
            o.events.iter().filter(|e| e.2.is_some()).map(|e| (e.1.as_str(), e.2.as_deref())).collect();
        assert_eq!(
            regional,
            [("OPENED", Some("b")), ("OPENED", Some("a")), ("CLOSED", Some("b")), ("OPENED", Some("c"))],
            "batch_size {b}"
        );
        let last = o.on_topic.iter().rev().find(|e| e.2.is_none()).expect("a site-wide event on the topic");
        assert_eq!(
            last.1,
            EventKind::Opened,
            "batch_size {b}: the topic's last word on the site: {:?}",
            o.on_topic
        );
    }
}

/// Regions eu, us, ap; only ap fails, and its clock runs 10 minutes ahead (admitted: the
/// consumer allows 1 h), so its results arrive interleaved with eu's and us's of 10 minutes
/// before. One region of three is never the site.
#[tokio::test(flavor = "multi_thread")]
async fn one_skewed_failing_region_of_three_never_opens_the_site() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const SLOTS: usize = 100;
    let ahead = TimeDelta::minutes(10);
    // eu and us end a minute ago; ap's clock says 9 minutes from now by then.
    let base = now_plus(-(SLOTS as i64) * 10 - 60);
    let mut eu_us = results("eu", base, &"+".repeat(SLOTS));
    eu_us.extend(results("us", base, &"+".repeat(SLOTS)));
    let ap = results("ap", base + ahead, &format!("+{}", "x".repeat(SLOTS - 1)));
    // By the moment each was checked (ap's scheduled_at is 10 minutes ahead of that).
    let mut stream: Vec<(DateTime<Utc>, CheckResult)> =
        eu_us.into_iter().map(|r| (r.scheduled_at, r)).collect();
    stream.extend(ap.into_iter().map(|r| (r.scheduled_at - ahead, r)));
    stream.sort_by(|a, b| (a.0, &a.1.region).cmp(&(b.0, &b.1.region)));
    let all: Vec<CheckResult> = stream.into_iter().map(|(_, r)| r).collect();
    for o in run(all, "  max_clock_skew: 1h\n").await {
        let b = o.batch_size;
        assert!(o.incident(None).is_empty(), "batch_size {b}: no site-wide incident: {:?}", o.incidents);
        let ap = o.incident(Some("ap"));
        assert_eq!(o.incidents.len(), 1, "batch_size {b}: only ap's: {:?}", o.incidents);
        let (_, _, started, confirmed, ended, _, failed, _) = ap[0];
        assert_eq!(
            (*started, *confirmed, *ended),
            (base + ahead + INTERVAL, base + ahead + INTERVAL * 3, None),
            "batch_size {b}: from ap's second result (its first only makes it known), still open"
        );
        assert!(*failed >= 3, "batch_size {b}: {failed}");
        let kinds: Vec<(&str, Option<&str>)> =
            o.events.iter().map(|e| (e.1.as_str(), e.2.as_deref())).collect();
        assert_eq!(kinds, [("OPENED", Some("ap"))], "batch_size {b}: ap's incident opened once");
    }
}

/// One region, a few successes, then one SUCCESS dated 50 minutes ahead (admitted: the consumer
/// allows 1 h), then 6 failures of the present: the outage opens, the future success — whose
/// slot is not judged yet — closes nothing, and the latest status shows the present failures.
#[tokio::test(flavor = "multi_thread")]
async fn a_success_from_the_future_does_not_close_the_present_outage() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // The present: 3 successes and 6 failures, the last a minute ago.
    let base = now_plus(-9 * 10 - 60);
    let present = results("eu", base, "+++xxxxxx");
    let future = results("eu", base + INTERVAL * 2 + TimeDelta::minutes(50), "+");
    let mut all = present[..3].to_vec();
    all.extend(future);
    all.extend(present[3..].iter().cloned());
    let first_failure = base + INTERVAL * 3;
    for o in run(all, "  max_clock_skew: 1h\n").await {
        let b = o.batch_size;
        let eu = o.incident(Some("eu"));
        assert_eq!(eu.len(), 1, "batch_size {b}: {:?}", o.incidents);
        let (_, _, started, confirmed, ended, reason, failed, _) = eu[0];
        assert_eq!(*started, first_failure, "batch_size {b}: since the first present failure");
        assert_eq!(*confirmed, first_failure + INTERVAL * 2, "batch_size {b}: at the third");
        assert_eq!(
            (*ended, reason.as_deref(), *failed),
            (None, None, 6),
            "batch_size {b}: open, all 6 failures"
        );
        assert!(
            o.incidents.iter().all(|i| i.4.is_none()) && o.events.iter().all(|e| e.1 == "OPENED"),
            "batch_size {b}: nothing closed: {:?}",
            o.events
        );
        assert_eq!(
            o.status,
            [("eu".to_owned(), "FAILURE".to_owned(), 6, first_failure + INTERVAL * 5)],
            "batch_size {b}: site_status shows the present failures, not the success from the future"
        );
    }
}

/// The default region is the host name, new with every container: labels host-0..host-69 each
/// report 3 slots one after another (host-5 fails 4 times: down), then host-new reports a
/// success and 6 failures (and recovers). Regions tracked stay within the cap, host-new's outage
/// opens, and host-5 — down when it went away, its place taken by a new label — is retired.
#[tokio::test(flavor = "multi_thread")]
async fn seventy_short_lived_labels_then_a_new_labels_outage() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let base = now_plus(-2 * 3600);
    let mut all = Vec::new();
    let mut at = base;
    for i in 0..70 {
        let pattern = if i == 5 { "+xxxx" } else { "+++" };
        all.extend(results(&format!("host-{i}"), at, pattern));
        at += INTERVAL * pattern.len() as i32;
    }
    // A new label's outage, and it goes on reporting: a label that stopped holds the slot after
    // its last result until the newest result is max_clock_skew (2m) + 3 intervals past it, so
    // host-new's first slots are judged only once it reported 12 more (15 here).
    let new_start = at;
    all.extend(results("host-new", new_start, &format!("+xxxxxx{}", "+".repeat(15))));
    for o in run(by_slot(all), "").await {
        let b = o.batch_size;
        let regions = o.tracks.iter().filter(|r| !r.is_empty()).count();
        let own = o.tracks.iter().filter(|r| r.is_empty()).count();
        assert!(
            own == 1 && regions <= sitemon::domain::MAX_REGIONS,
            "batch_size {b}: at most {} region tracks and the site's own, found {regions} and {own}: {:?}",
            sitemon::domain::MAX_REGIONS,
            o.tracks
        );
        let new = o.incident(Some("host-new"));
        assert_eq!(new.len(), 1, "batch_size {b}: host-new's outage opens: {:?}", o.incidents);
        assert_eq!(
            (new[0].2, new[0].3, new[0].4, new[0].5.as_deref()),
            (
                new_start + INTERVAL,
                new_start + INTERVAL * 3,
                Some(new_start + INTERVAL * 7),
                Some("RECOVERED")
            ),
            "batch_size {b}: host-new down from its first failure, confirmed at its third, up again"
        );
        let old = o.incident(Some("host-5"));
        assert_eq!(old.len(), 1, "batch_size {b}: {:?}", o.incidents);
        assert!(
            old[0].4.is_some() && old[0].5.as_deref() == Some("RETIRED"),
            "batch_size {b}: host-5's incident closed as retired: {:?}",
            old[0]
        );
        let host5: Vec<(&str, Option<&str>)> = o
            .events
            .iter()
            .filter(|e| e.2.as_deref() == Some("host-5"))
            .map(|e| (e.1.as_str(), e.4.as_deref()))
            .collect();
        assert_eq!(host5, [("OPENED", None), ("CLOSED", Some("RETIRED"))], "batch_size {b}");
    }
}
