//! Fault: a topic of results from three regions with outages, stored by consumers that are
//! SIGKILLed mid-stream and restarted, then replayed from the start by a second group into the
//! same database: every incident exactly once, every state change exactly one event (by its
//! deterministic id) — what deriving the whole stream in one go gives — and every event on the
//! events topic.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use rdkafka::producer::FutureRecord;
use sitemon::domain::{CheckResult, CheckStatus, FailureKind, SiteTracks, derive_incidents};

use crate::harness::{ONE_AT_A_TIME, Setup, rows, spawn, topic_payloads, try_history};
use crate::support::{self, describe, sitemon, wait_for};

const SITES: usize = 12;
const SLOTS: i64 = 60;
/// Produced slot by slot, each slot's regions in name order (the order within a slot does not
/// matter: a slot is judged once, with all of its results).
const REGIONS: [&str; 3] = ["ap", "eu", "us"];

/// Site `s` in region `region` at slot `k`: outages in some regions at some times, so that some
/// sites see one region down (no site-wide incident) and others two or three.
fn failing(s: usize, region: usize, k: i64) -> bool {
    let block = (k / 10) as usize;
    let down_regions = (s + block) % 4; // 0..=3 regions down in this block
    let outage = region < down_regions && (k % 10) >= 2 && (k % 10) < 8;
    outage || (s * 7 + region * 3 + k as usize).is_multiple_of(17)
}

fn stream() -> Vec<CheckResult> {
    let t0 = Utc.timestamp_opt(Utc::now().timestamp() - 2 * 3600, 0).unwrap();
    let mut all = Vec::new();
    for k in 0..SLOTS {
        for s in 0..SITES {
            for (ri, region) in REGIONS.iter().enumerate() {
                let t = t0 + chrono::Duration::seconds(10 * k);
                let site = format!("inc-{s:02}");
                let mut r = CheckResult::new(&site, "http://x/", region, t, t, CheckStatus::Success);
                if failing(s, ri, k) {
                    r.fail(FailureKind::Timeout, "no complete response within 1s");
                }
                (r.interval_ms, r.down_after, r.up_after) = (Some(10_000), Some(2), Some(2));
                all.push(r);
            }
        }
    }
    all
}

async fn stored(db: &str) -> (Vec<(String, i64, Option<i64>, i64)>, Vec<String>) {
    let mut c = support::connect(db).await;
    let incidents = sqlx::query_as(
        "SELECT incident_id::text, (extract(epoch FROM started_at) * 1000000)::bigint, \
         (extract(epoch FROM ended_at) * 1000000)::bigint, failed_checks FROM incidents ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let events = sqlx::query_scalar("SELECT event_id::text FROM incident_events ORDER BY 1")
        .fetch_all(&mut c)
        .await
        .unwrap();
    (incidents, events)
}

#[tokio::test(flavor = "multi_thread")]
async fn incidents_and_events_exactly_once_across_sigkills_and_a_replay() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let all = stream();
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
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
    let events_topic = support::unique("sitemon-faults-events");
    let consumer_cfg = |group: &str| {
        format!(
            "region: faults\nkafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {}\n  events_topic: {}\n  group_id: {group}\n\
             \x20 properties:\n    session.timeout.ms: 6000\n    heartbeat.interval.ms: 1000\n\
             postgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_size: 25\n  batch_wait: 100ms\n",
            s.topic, events_topic
        )
    };
    let cfg = s.write("consumer.yaml", &consumer_cfg("incidents"));
    let n = all.len() as i64;
    for target in [n / 5, n / 2, n * 4 / 5] {
        let consumer = spawn(&["consumer", "-c", &cfg], &s.env());
        let reached =
            wait_for(Duration::from_secs(90), || async { try_history(&s.db).await.filter(|c| *c >= target) })
                .await;
        assert!(reached.is_some(), "consumer did not reach {target} rows:\n{}", consumer.log.lock().unwrap());
        consumer.signal("-KILL");
        let (code, _) = consumer.finish(Duration::from_secs(10)).await;
        assert_eq!(code, None, "killed by a signal");
    }
    let drain = |cfg: String| {
        let env = s.env();
        async move {
            let out =
                sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &env, Duration::from_secs(120))
                    .await;
            assert!(out.status.success(), "{}", describe(&out));
        }
    };
    drain(cfg).await;
    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, n);
    let after_kills = stored(&s.db).await;

    // A replay: another group reads the whole topic again into the same database.
    drain(s.write("replay.yaml", &consumer_cfg("incidents-replay"))).await;
    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, n);
    assert_eq!(rows(&s.db, "SELECT count(*) FROM dead_letters").await, 0);
    let after_replay = stored(&s.db).await;
    assert_eq!(after_replay, after_kills, "the replay derived nothing new");

    // What the whole stream gives in one go.
    let mut tracks: Vec<SiteTracks> = Vec::new();
    let refs: Vec<&CheckResult> = all.iter().collect();
    // (With the consumer's default time bounds, as the consumers above judge.)
    let want = derive_incidents(&mut tracks, &refs, &sitemon::config::ConsumerConfig::default().judging());
    let mut want_incidents: Vec<(String, i64, Option<i64>, i64)> = want
        .incidents
        .iter()
        .map(|i| {
            (
                i.incident_id.to_string(),
                i.started_at.timestamp_micros(),
                i.ended_at.map(|t| t.timestamp_micros()),
                i.failed_checks,
            )
        })
        .collect();
    want_incidents.sort();
    let mut want_events: Vec<String> = want.events.iter().map(|e| e.event_id.to_string()).collect();
    want_events.sort();
    let site_wide = want.incidents.iter().filter(|i| i.region.is_none()).count();
    assert!(
        site_wide >= 3 && want.incidents.len() > site_wide + 3,
        "the stream has both kinds: {want_incidents:?}"
    );
    assert_eq!(after_replay.0, want_incidents, "incidents as the whole stream gives them");
    assert_eq!(after_replay.1, want_events, "one event per state change");

    // Published: every one on the events topic (a repeat allowed, a loss not), and marked.
    assert_eq!(rows(&s.db, "SELECT count(*) FROM incident_events WHERE published_at IS NULL").await, 0);
    let mut on_topic: Vec<String> = topic_payloads(&events_topic, want_events.len())
        .iter()
        .map(|p| sitemon::wire::decode_event(p).expect("an event sitemon can read").event_id.to_string())
        .collect();
    on_topic.sort();
    on_topic.dedup();
    assert_eq!(on_topic, want_events, "every event on the topic");
}
