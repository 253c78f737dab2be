//! Incident events from the outbox (`incident_events` rows, written here with SQL) to Kafka:
//! every row published and marked, each event decodable and carrying its id; a broker that
//! cannot be reached keeps them pending until it can; a site whose first publish fails still
//! has its events on the topic in order (OPENED, then CLOSED); a stop leaves what was not
//! acknowledged in the outbox; one process publishes at a time; `sitemon consumer` publishes
//! them in the registry framing under the id it registered; `sitemon run` logs them; and Apache
//! Avro's Java library decodes them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use sitemon::config::{KafkaConfig, PostgresConfig, Secret};
use sitemon::domain::{CheckResult, CheckStatus, EventKind, FailureKind, IncidentEvent};
use sitemon::events::{self, EventOptions, EventReport};
use sitemon::kafka::KafkaEventSink;
use sitemon::ports::{EventOutbox, EventSink, PublishError};
use sitemon::store::{PgStore, SqliteStore};
use sqlx::{Connection, PgConnection, SqliteConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::interop::{peer, topic_payloads};
use crate::support::outbox::{insert_pg, samples, unpublished_pg};
use crate::support::registry_standin::Registry;
use crate::support::{self, describe, sitemon, sites, wait_for, write};

const LIMIT: Duration = Duration::from_secs(120);

async fn insert_sqlite(conn: &mut SqliteConnection, events: &[IncidentEvent]) {
    let us = |t: DateTime<Utc>| t.timestamp_micros();
    for e in events {
        let i = &e.incident;
        sqlx::query(
            "INSERT INTO incident_events (event_id, kind, at, incident_id, site_id, region, url, started_at, \
             confirmed_at, ended_at, regions, failure_kind, error, failed_checks, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.event_id.to_string())
        .bind(e.kind.as_str())
        .bind(us(e.at))
        .bind(i.incident_id.to_string())
        .bind(&i.site_id)
        .bind(&i.region)
        .bind(&i.url)
        .bind(us(i.started_at))
        .bind(us(i.confirmed_at))
        .bind(i.ended_at.map(us))
        .bind(serde_json::to_string(&i.regions).unwrap())
        .bind(i.failure_kind.map(FailureKind::as_str))
        .bind(&i.error)
        .bind(i.failed_checks)
        .bind(us(Utc::now()))
        .execute(&mut *conn)
        .await
        .expect("insert an outbox row");
    }
}

/// A database with the migrations applied, its store, and a connection for the test's SQL.
async fn database() -> (String, PgStore, PgConnection) {
    let db = support::fresh_database().await;
    let store = PgStore::connect(&PostgresConfig { url: Secret::new(db.clone()), max_connections: 2 })
        .expect("store");
    store.migrate().await.expect("migrations");
    let conn = support::connect(&db).await;
    (db, store, conn)
}

fn kafka(bootstrap: &str, events_topic: &str, properties: &[(&str, &str)]) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: bootstrap.to_owned(),
        topic: support::unique("sitemon-events-checks"),
        events_topic: events_topic.to_owned(),
        sites_topic: None,
        group_id: "events".to_owned(),
        tls: None,
        sasl: None,
        properties: properties.iter().map(|(k, v)| (k.to_string(), Secret::new(*v))).collect(),
    }
}

fn ids(events: &[IncidentEvent]) -> HashSet<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

/// Every event in the topic decoded; at least `n` of them; returns them.
async fn topic_events(topic: &str, n: usize) -> Vec<IncidentEvent> {
    topic_payloads(topic, n)
        .await
        .iter()
        .map(|p| sitemon::wire::decode_event(p).unwrap_or_else(|e| panic!("undecodable event: {e}")))
        .collect()
}

/// A TCP gate in front of the broker's bootstrap address: while closed it drops every
/// connection (the broker is unreachable); once open it forwards them. librdkafka learns the
/// broker's own address from the metadata it gets through the gate.
struct Gate {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
}

impl Gate {
    async fn start(upstream: String) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the gate");
        let addr = listener.local_addr().unwrap();
        let (open, refused) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (o, r) = (open.clone(), refused.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !o.load(Ordering::SeqCst) {
                    r.fetch_add(1, Ordering::SeqCst);
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Gate { addr, open, refused }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_rows_are_published_decodable_and_marked() {
    let (_db, store, mut conn) = database().await;
    let events = samples("pub", 12);
    insert_pg(&mut conn, &events).await;
    let topic = support::unique("sitemon-events");
    let sink = KafkaEventSink::new(&kafka(&support::kafka_bootstrap(), &topic, &[])).unwrap();
    let outbox = store.outbox();
    // Asked to stop from the start: it publishes what the outbox holds, then returns.
    let stop = CancellationToken::new();
    stop.cancel();
    let opts = EventOptions { batch: 5, ..EventOptions::default() };
    let report =
        tokio::time::timeout(LIMIT, events::run(&outbox, &sink, &opts, stop, CancellationToken::new()))
            .await
            .expect("drained within the limit");
    assert_eq!(report, EventReport { published: 12, left: Some(0) });
    assert_eq!(unpublished_pg(&mut conn).await, Vec::<Uuid>::new(), "every row marked");
    let published: Vec<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT event_id, created_at, published_at FROM incident_events")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(published.iter().all(|(_, c, p)| p.is_some_and(|p| p >= *c)), "{published:?}");

    let got = topic_events(&topic, events.len()).await;
    assert_eq!(ids(&got), ids(&events), "every event_id in the topic");
    for e in &events {
        let copies: Vec<&IncidentEvent> = got.iter().filter(|g| g.event_id == e.event_id).collect();
        assert!(copies.iter().all(|g| *g == e), "decoded as stored: {e:?}");
    }
}

/// A sink that counts the publishes that failed.
struct Counting<S> {
    inner: S,
    failed: AtomicUsize,
}

impl<S: EventSink> EventSink for Counting<S> {
    async fn publish(&self, event: &IncidentEvent) -> Result<(), PublishError> {
        let r = self.inner.publish(event).await;
        if r.is_err() {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_keeps_events_pending_until_it_can_publish() {
    let (db, store, mut conn) = database().await;
    let events = samples("gate", 4);
    insert_pg(&mut conn, &events).await;
    let gate = Gate::start(support::kafka_bootstrap()).await;
    let topic = support::unique("sitemon-events-gate");
    // Short delivery timeout: publishes fail (and are retried) while the gate is closed.
    let k = kafka(
        &gate.addr.to_string(),
        &topic,
        &[("message.timeout.ms", "2000"), ("reconnect.backoff.max.ms", "500")],
    );
    let sink = Arc::new(Counting { inner: KafkaEventSink::new(&k).unwrap(), failed: AtomicUsize::new(0) });
    let outbox = store.outbox();
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let task = {
        let (stop, abort, sink) = (stop.clone(), abort.clone(), sink.clone());
        tokio::spawn(async move { events::run(&outbox, &*sink, &EventOptions::default(), stop, abort).await })
    };
    // Tried, refused, failed (the delivery timed out), and kept: nothing is marked.
    let failed = wait_for(Duration::from_secs(60), || async {
        (gate.refused.load(Ordering::SeqCst) >= 1 && sink.failed.load(Ordering::SeqCst) >= 4).then_some(())
    })
    .await;
    assert!(failed.is_some(), "the publishes did not fail while the broker was unreachable");
    let mut want: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(unpublished_pg(&mut conn).await, want, "nothing marked while the broker is unreachable");

    gate.open.store(true, Ordering::SeqCst);
    let marked = wait_for(LIMIT, || {
        let url = db.clone();
        async move {
            let mut c = support::connect(&url).await;
            unpublished_pg(&mut c).await.is_empty().then_some(())
        }
    })
    .await;
    assert!(marked.is_some(), "the events were not published once the broker could be reached");
    stop.cancel();
    let report = tokio::time::timeout(LIMIT, task).await.expect("stops").unwrap();
    assert_eq!((report.published >= 4, report.left), (true, Some(0)), "{report:?}");
    let got = topic_events(&topic, events.len()).await;
    want.sort();
    let mut got_ids: Vec<Uuid> = ids(&got).into_iter().collect();
    got_ids.sort();
    assert_eq!(got_ids, want);
}

/// A sink in front of the broker that fails the first publish of `site` once, without sending it.
struct FailFirst<S> {
    inner: S,
    site: String,
    failed: AtomicBool,
}

impl<S: EventSink> EventSink for FailFirst<S> {
    async fn publish(&self, event: &IncidentEvent) -> Result<(), PublishError> {
        if event.incident.site_id == self.site && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(PublishError::Delivery("the first publish of the site failed".into()));
        }
        self.inner.publish(event).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_failed_earlier_event_the_topic_still_holds_the_sites_events_in_order() {
    let (_db, store, mut conn) = database().await;
    let base = samples("order", 2);
    let incident = &base[0].incident; // open
    let opened = IncidentEvent::new(EventKind::Opened, incident.confirmed_at, incident);
    let mut ended = incident.clone();
    ended.ended_at = Some(incident.started_at + chrono::Duration::seconds(90));
    let closed = IncidentEvent::new(EventKind::Closed, ended.ended_at.unwrap(), &ended);
    let other = base[1].clone();
    // Stored in this order: the site's OPENED, its CLOSED, another site's event.
    insert_pg(&mut conn, &[opened.clone(), closed.clone(), other.clone()]).await;
    let topic = support::unique("sitemon-events-order");
    let sink = FailFirst {
        inner: KafkaEventSink::new(&kafka(&support::kafka_bootstrap(), &topic, &[])).unwrap(),
        site: opened.incident.site_id.clone(),
        failed: AtomicBool::new(false),
    };
    let stop = CancellationToken::new();
    stop.cancel();
    let report = tokio::time::timeout(
        LIMIT,
        events::run(&store.outbox(), &sink, &EventOptions::default(), stop, CancellationToken::new()),
    )
    .await
    .expect("drained within the limit");
    assert!(sink.failed.load(Ordering::SeqCst), "the site's first publish failed");
    assert_eq!(report, EventReport { published: 3, left: Some(0) });
    assert_eq!(unpublished_pg(&mut conn).await, Vec::<Uuid>::new(), "every row marked");
    // One partition holds the site's events (keyed by site), read in its order.
    let got = topic_events(&topic, 3).await;
    let site: Vec<Uuid> =
        got.iter().filter(|e| e.incident.site_id == opened.incident.site_id).map(|e| e.event_id).collect();
    assert_eq!(site, [opened.event_id, closed.event_id], "OPENED, then CLOSED, each once");
    assert_eq!(ids(&got), ids(&[opened, closed, other]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_leaves_what_was_not_acknowledged_in_the_outbox() {
    let (_db, store, mut conn) = database().await;
    let events = samples("stop", 3);
    insert_pg(&mut conn, &events).await;
    let gate = Gate::start(support::kafka_bootstrap()).await; // never opened
    let topic = support::unique("sitemon-events-stop");
    let sink = KafkaEventSink::new(&kafka(&gate.addr.to_string(), &topic, &[])).unwrap();
    let outbox = store.outbox();
    let (stop, abort) = (CancellationToken::new(), CancellationToken::new());
    let task = {
        let (stop, abort) = (stop.clone(), abort.clone());
        tokio::spawn(async move { events::run(&outbox, &sink, &EventOptions::default(), stop, abort).await })
    };
    stop.cancel();
    let tried = wait_for(Duration::from_secs(30), || async {
        (gate.refused.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    assert!(tried.is_some(), "the publisher never tried to reach the broker");
    assert!(!task.is_finished(), "a stop waits for the events in hand until the grace period ends");
    abort.cancel();
    let report =
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("an abort ends it at once").unwrap();
    assert_eq!(report, EventReport { published: 0, left: Some(3) });
    assert_eq!(unpublished_pg(&mut conn).await.len(), 3, "left for the next start");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_process_publishes_at_a_time() {
    let (db, first, mut conn) = database().await;
    let second =
        PgStore::connect(&PostgresConfig { url: Secret::new(db.clone()), max_connections: 2 }).unwrap();
    insert_pg(&mut conn, &samples("lock", 3)).await;
    let a = first.outbox();
    let b = second.outbox();
    assert_eq!(a.pending(10).await.unwrap().len(), 3, "the first to ask publishes");
    assert_eq!(b.pending(10).await.unwrap(), Vec::new(), "the other sees nothing pending meanwhile");
    assert_eq!(b.unpublished().await.unwrap(), 3, "but knows what waits");
    let seqs: Vec<i64> = a.pending(1).await.unwrap().iter().map(|p| p.seq).collect();
    a.mark_published(&seqs).await.unwrap();
    a.mark_published(&seqs).await.unwrap();
    assert_eq!(b.unpublished().await.unwrap(), 2, "marked once; again changes nothing");
    // The first process goes away: its session ends and the other takes over.
    drop(a);
    let taken =
        wait_for(Duration::from_secs(30), || async { b.pending(10).await.ok().filter(|p| p.len() == 2) })
            .await;
    assert!(taken.is_some(), "the second outbox never took over");
}

/// A database (migrated by `sitemon migrate`) with `events` in its outbox, a checks topic with
/// one record in it (so that the consumer has a partition to idle on), and a consumer config
/// with the registry.
struct ConsumerSetup {
    db: String,
    events_topic: String,
    bootstrap: String,
    cfg: String,
    _dir: tempfile::TempDir,
}

impl ConsumerSetup {
    async fn new(registry: &Registry, events: &[IncidentEvent]) -> ConsumerSetup {
        let db = support::fresh_database().await;
        let (topic, events_topic) =
            (support::unique("sitemon-ev-checks"), support::unique("sitemon-ev-events"));
        let bootstrap = support::kafka_bootstrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(
            dir.path(),
            "sitemon.yaml",
            &format!(
                "kafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {topic}\n  events_topic: {events_topic}\n  group_id: events\n\
                 postgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_size: 10\n  batch_wait: 100ms\n\
                 schema_registry:\n  url: {}\n",
                registry.url()
            ),
        );
        let s = ConsumerSetup { db, events_topic, bootstrap, cfg, _dir: dir };
        let out = sitemon(&["migrate", "-c", &s.cfg], &s.env(), LIMIT).await;
        assert!(out.status.success(), "migrate: {}", describe(&out));
        insert_pg(&mut support::connect(&s.db).await, events).await;
        let producer: FutureProducer =
            ClientConfig::new().set("bootstrap.servers", &s.bootstrap).create().unwrap();
        let now = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
        let r = CheckResult::new("ev-check", "http://x/", "events", now, now, CheckStatus::Success);
        let payload = sitemon::wire::encode(&r);
        let record = FutureRecord::to(&topic).key("ev-check").payload(&payload);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
        s
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            ("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap.as_str()),
            ("SITEMON_TEST_DATABASE_URL", self.db.as_str()),
        ]
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_publishes_the_outbox_in_the_registry_framing() {
    let registry = Registry::start().await;
    let events = samples("consumer", 5);
    let s = ConsumerSetup::new(&registry, &events).await;
    let out = sitemon(&["consumer", "-c", &s.cfg, "--exit-when-idle", "3s"], &s.env(), LIMIT).await;
    assert!(out.status.success(), "consumer: {}", describe(&out));
    assert!(describe(&out).contains("incident events published; none left"), "{}", describe(&out));
    let versions = registry.versions(&format!("{}-value", s.events_topic));
    assert_eq!(versions.len(), 1, "the event schema registered under <events_topic>-value");
    let payloads = topic_payloads(&s.events_topic, events.len()).await;
    let mut got = HashSet::new();
    for p in &payloads {
        assert_eq!(p[0], 0, "Confluent framing");
        assert_eq!(u32::from_be_bytes([p[1], p[2], p[3], p[4]]), versions[0], "under the registered id");
        got.insert(sitemon::wire::decode_event(p).expect("decodes").event_id);
    }
    assert_eq!(got, ids(&events));
    assert_eq!(unpublished_pg(&mut support::connect(&s.db).await).await, Vec::<Uuid>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_refuses_the_event_schema_stops_the_consumer() {
    let registry = Registry::start().await;
    let events = samples("refused", 2);
    let s = ConsumerSetup::new(&registry, &events).await;
    // Another writer's schema under the subject, which the event schema cannot read (BACKWARD).
    let other = r#"{"type":"record","name":"IncidentEvent","namespace":"dev.sitemon","fields":[{"name":"x","type":"int"}]}"#;
    registry.register(&format!("{}-value", s.events_topic), other).expect("registered");
    let started = std::time::Instant::now();
    let out = sitemon(&["consumer", "-c", &s.cfg, "--exit-when-idle", "60s"], &s.env(), LIMIT).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(started.elapsed() < Duration::from_secs(45), "it stopped at the refusal, not when idle");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused schemas/incident_event.avsc") && err.contains("incompatible"), "{err}");
    assert_eq!(
        unpublished_pg(&mut support::connect(&s.db).await).await.len(),
        2,
        "the events stay in the outbox"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sitemon_run_logs_each_event_and_marks_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    drop(SqliteStore::open(&path).await.expect("create the database"));
    let url = format!("sqlite://{}", path.display());
    let events = samples("run", 3);
    insert_sqlite(&mut SqliteConnection::connect(&url).await.unwrap(), &events).await;
    let addr = sites::start().await;
    let cfg = write(
        dir.path(),
        "run.yaml",
        &format!(
            "sites:\n  - {{name: ok, url: 'http://{addr}/ok', interval: 1s, timeout: 500ms}}\nsqlite:\n  path: {}\n",
            path.display()
        ),
    );
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"))
        .args(["run", "-c", &cfg, "--grace", "3s", "--no-table"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let marked = wait_for(Duration::from_secs(30), || async {
        let mut c = SqliteConnection::connect(&url).await.ok()?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM incident_events WHERE published_at IS NULL")
            .fetch_one(&mut c)
            .await
            .ok()?;
        (n == 0).then_some(())
    })
    .await;
    assert!(marked.is_some(), "sitemon run did not mark the events within 30 s");
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    for e in &events {
        let line = log
            .lines()
            .find(|l| l.contains(&e.event_id.to_string()))
            .unwrap_or_else(|| panic!("no log line for {e:?}:\n{log}"));
        let what = if e.kind == EventKind::Opened { "incident opened" } else { "incident closed" };
        assert!(line.contains(what) && line.contains(&e.incident.site_id), "{line}");
        let region = e.incident.region.as_deref().unwrap_or("*");
        assert!(line.contains(&format!("region={region}")), "{line}");
    }
}

/// An event as the Java peer prints a decoded record: union values bare, enums as symbols,
/// logical types as their underlying strings and longs.
fn plain(e: &IncidentEvent) -> Value {
    let i = &e.incident;
    json!({
        "event_id": e.event_id.to_string(),
        "kind": e.kind.as_str(),
        "at": e.at.timestamp_micros(),
        "incident_id": i.incident_id.to_string(),
        "site_id": i.site_id,
        "region": i.region,
        "url": i.url,
        "started_at": i.started_at.timestamp_micros(),
        "confirmed_at": i.confirmed_at.timestamp_micros(),
        "ended_at": i.ended_at.map(|t| t.timestamp_micros()),
        "regions": i.regions,
        "failure_kind": i.failure_kind.map(FailureKind::as_str),
        "error": i.error,
        "failed_checks": i.failed_checks,
        "end_reason": i.end_reason.map(|r| r.as_str()),
        "incident_kind": i.kind.as_str(),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_implementation_decodes_events() {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/incident_event.avsc");
    let schema = schema.display().to_string();
    let events = samples("interop", 8);
    let input: String = events.iter().map(|e| hex(&sitemon::wire::encode_event(e)) + "\n").collect();
    let out = peer(&["decode".into(), schema.clone(), schema], &input).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), events.len(), "{out}");
    for (line, e) in lines.iter().zip(&events) {
        let got: Value = serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert_eq!(got, plain(e), "decoded by Apache Avro (Java)");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
