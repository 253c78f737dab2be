//! Schema registry round trips against the stand-in (support/registry_standin.rs) with real
//! Kafka and PostgreSQL: the producer registers its schema and writes the Confluent framing;
//! the consumer stores both framings, records an independent encoder (Apache Avro's Java
//! library) wrote under an id it registered itself, waits out a registry outage, and
//! dead-letters an id the registry does not have; an incompatible schema stops the producer
//! before any check, an unreachable one is asked again until it answers; and the registry
//! accepts schema v2 after v1.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sitemon::domain::{CheckResult, CheckStatus};

use crate::interop::{avro_json, current_schema, from_row, peer, samples, topic_payloads, unhex};
use crate::support::registry_standin::{self, Registry};
use crate::support::{self, describe, raw, sitemon, sites, write};

const LIMIT: Duration = Duration::from_secs(120);
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

struct Setup {
    db: String,
    topic: String,
    bootstrap: String,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(prefix: &str) -> Setup {
        Setup {
            db: support::fresh_database().await,
            topic: support::unique(prefix),
            bootstrap: support::kafka_bootstrap(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn env(&self) -> [(&str, &str); 3] {
        [
            ("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap.as_str()),
            ("SITEMON_TEST_DATABASE_URL", self.db.as_str()),
            ("REGISTRY_PASSWORD", "not-a-real-password"),
        ]
    }

    /// A config with `schema_registry` pointing at the stand-in, and these sites.
    fn config(&self, registry: &Registry, sites: &str) -> String {
        write(
            self.dir.path(),
            "sitemon.yaml",
            &format!(
                "region: registry\nkafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {}\n  group_id: registry\n\
                 postgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_size: 10\n  batch_wait: 100ms\n\
                 schema_registry:\n  url: {}\n  username: sitemon\n  password: ${{REGISTRY_PASSWORD}}\nsites:\n{sites}",
                self.topic,
                registry.url()
            ),
        )
    }

    async fn send(&self, records: &[(&str, Vec<u8>)]) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("acks", "all")
            .create()
            .unwrap();
        for (key, payload) in records {
            let record = FutureRecord::to(&self.topic).key(*key).payload(payload);
            producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
        }
    }

    async fn stored(&self) -> (HashMap<uuid::Uuid, CheckResult>, Vec<String>) {
        let mut conn = support::connect(&self.db).await;
        let rows = sqlx::query("SELECT * FROM check_results").fetch_all(&mut conn).await.unwrap();
        let dead: Vec<String> =
            sqlx::query_scalar("SELECT error FROM dead_letters").fetch_all(&mut conn).await.unwrap();
        (rows.iter().map(from_row).map(|r| (r.check_id, r)).collect(), dead)
    }
}

fn confluent(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend(id.to_be_bytes());
    bytes.extend_from_slice(datum);
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn both_framings_and_an_independent_encoders_records_are_stored() {
    let registry = Registry::start().await;
    let s = Setup::new("sitemon-registry").await;
    let addr = sites::start().await;
    let cfg = s.config(
        &registry,
        &format!("  - {{name: sr-ok, url: 'http://{addr}/ok'}}\n  - {{name: sr-error, url: 'http://{addr}/error'}}\n"),
    );

    // 1. The producer registers schemas/check_result.avsc under <topic>-value and writes the
    //    Confluent framing with the id the registry gave.
    let out = sitemon(&["producer", "--once", "-c", &cfg], &s.env(), LIMIT).await;
    assert!(out.status.success(), "producer: {}", describe(&out));
    assert!(!describe(&out).contains("not-a-real-password"), "the password is never logged");
    let ids = registry.versions(&format!("{}-value", s.topic));
    assert_eq!(ids.len(), 1, "one version registered under {}-value", s.topic);
    let id = ids[0];
    let produced = topic_payloads(&s.topic, 2).await;
    for p in &produced {
        assert_eq!(p[..5], confluent(id, &[])[..], "Confluent framing with the registered id");
    }

    // 2. An independent client registers the same schema under another subject over HTTP (the
    //    registry gives the same id; without the content type it answers 415), and Apache Avro's
    //    Java library encodes the datums it frames with that id.
    let schema = std::fs::read_to_string(current_schema()).unwrap();
    let body = json!({"schema": schema}).to_string();
    let path = "/subjects/independent-value/versions";
    let (status, answer) = registry_standin::request(registry.addr, "POST", path, None, &body).await;
    assert_eq!((status, answer["error_code"].as_u64()), (415, Some(415)), "{answer}");
    let (status, answer) =
        registry_standin::request(registry.addr, "POST", path, Some(CONTENT_TYPE), &body).await;
    assert_eq!((status, answer["id"].as_u64()), (200, Some(u64::from(id))), "same schema, same id: {answer}");
    let (status, answer) =
        registry_standin::request(registry.addr, "GET", &format!("/schemas/ids/{id}"), None, "").await;
    assert_eq!(status, 200);
    assert_ne!(answer["schema"].as_str(), Some(schema.as_str()), "re-serialised, not the text sent");
    assert_eq!(
        sitemon::wire::fingerprint(answer["schema"].as_str().unwrap()),
        sitemon::wire::fingerprint(&schema)
    );

    let now = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let from_peer = samples("sr-peer", now);
    let input: String = from_peer.iter().map(|r| avro_json(r) + "\n").collect();
    let encoded = peer(&["encode".into(), current_schema()], &input).await;
    let peer_records: Vec<Vec<u8>> = encoded.lines().map(unhex).map(|b| confluent(id, &b[10..])).collect();
    assert_eq!(peer_records.len(), from_peer.len(), "{encoded}");
    // 3. Into the same topic: those, a single-object record, and a record under an id the
    //    registry does not have.
    let single = CheckResult::new("sr-single", "http://x/", "registry", now, now, CheckStatus::Success);
    let mut records: Vec<(&str, Vec<u8>)> =
        from_peer.iter().map(|r| r.site_id.as_str()).zip(peer_records.iter().cloned()).collect();
    records.push(("sr-single", sitemon::wire::encode(&single)));
    let orphan = CheckResult::new("sr-orphan", "http://x/", "registry", now, now, CheckStatus::Success);
    records.push(("sr-orphan", sitemon::wire::encode_registered(&orphan, 0x7fff)));
    s.send(&records).await;

    let out = sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &s.env(), LIMIT).await;
    assert!(out.status.success(), "consumer: {}", describe(&out));
    let (stored, dead) = s.stored().await;
    assert_eq!(
        stored.len(),
        2 + from_peer.len() + 1,
        "every decodable record stored once; dead letters: {dead:?}"
    );
    for r in from_peer.iter().chain([&single]) {
        assert_eq!(stored.get(&r.check_id), Some(r), "stored as written");
    }
    let produced: Vec<&CheckResult> = stored.values().filter(|r| r.region == "registry").collect();
    assert_eq!(produced.len(), 2 + 1, "the producer's two and the single-object one: {produced:?}");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains("32767") && dead[0].contains("40403"), "unknown id: {}", dead[0]);
    assert!(registry.lookups() >= 2, "the consumer fetched the schema by id");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_consumer_waits_out_a_registry_outage() {
    let registry = Registry::start().await;
    let s = Setup::new("sitemon-registry-outage").await;
    let cfg = s.config(&registry, "");
    let id = registry.register("elsewhere-value", sitemon::wire::CURRENT_SCHEMA_JSON).expect("register");
    let now = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let results: Vec<CheckResult> = (0..3)
        .map(|i| {
            CheckResult::new(&format!("outage-{i}"), "http://x/", "registry", now, now, CheckStatus::Success)
        })
        .collect();
    let records: Vec<(&str, Vec<u8>)> =
        results.iter().map(|r| (r.site_id.as_str(), sitemon::wire::encode_registered(r, id))).collect();
    s.send(&records).await;
    registry.set_down(true);

    let consumer = {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"));
        cmd.args(["consumer", "-c", &cfg, "--exit-when-idle", "3s"]).envs(s.env()).kill_on_drop(true);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        cmd.spawn().expect("start the consumer")
    };
    let tried = support::wait_for(LIMIT, || async { (registry.refused() >= 4).then_some(()) }).await;
    assert!(tried.is_some(), "the consumer asked the registry again and again");
    let (stored, dead) = s.stored().await;
    assert!(stored.is_empty() && dead.is_empty(), "nothing stored or dead-lettered while down: {dead:?}");

    registry.set_down(false);
    let out =
        tokio::time::timeout(LIMIT, consumer.wait_with_output()).await.expect("consumer exits").unwrap();
    assert!(out.status.success(), "consumer: {}", describe(&out));
    let (stored, dead) = s.stored().await;
    assert_eq!(dead, Vec::<String>::new());
    assert_eq!(stored.len(), results.len(), "every record stored once the registry is back");
    for r in &results {
        assert_eq!(stored.get(&r.check_id), Some(r));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incompatible_schema_stops_the_producer_before_any_check() {
    let registry = Registry::start().await;
    let s = Setup::new("sitemon-registry-incompatible").await;
    // The subject's latest version has `site_id` as an int: sitemon's string cannot read it.
    let theirs = sitemon::wire::CURRENT_SCHEMA_JSON
        .replace(r#"{"name": "site_id", "type": "string"}"#, r#"{"name": "site_id", "type": "int"}"#);
    assert_ne!(theirs, sitemon::wire::CURRENT_SCHEMA_JSON);
    registry.register(&format!("{}-value", s.topic), &theirs).expect("register");
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let site = raw::serve(move |mut stream| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            raw::answer(&mut stream, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        }
    })
    .await;
    let cfg = s.config(&registry, &format!("  - {{name: never, url: 'http://{site}/'}}\n"));
    let out = sitemon(&["producer", "--once", "-c", &cfg], &s.env(), LIMIT).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("incompatible") && stderr.contains("no checks were run"), "{stderr}");
    assert!(stderr.contains(&format!("{}-value", s.topic)), "names the subject: {stderr}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no check ran");
    assert_eq!(registry.versions(&format!("{}-value", s.topic)).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_accepts_schema_v2_to_v5_after_v1_as_backward_compatible() {
    let registry = Registry::start().await;
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let v1 = std::fs::read_to_string(schemas.join("check_result.v1.avsc")).unwrap();
    let v2 = std::fs::read_to_string(schemas.join("check_result.v2.avsc")).unwrap();
    let v3 = std::fs::read_to_string(schemas.join("check_result.v3.avsc")).unwrap();
    let v4 = std::fs::read_to_string(schemas.join("check_result.v4.avsc")).unwrap();
    let v5 = std::fs::read_to_string(schemas.join("check_result.v5.avsc")).unwrap();
    let post = |schema: &str| {
        let body = json!({"schema": schema, "schemaType": "AVRO"}).to_string();
        let addr = registry.addr;
        async move {
            registry_standin::request(
                addr,
                "POST",
                "/subjects/evolution-value/versions",
                Some(CONTENT_TYPE),
                &body,
            )
            .await
        }
    };
    let (status, first) = post(&v1).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = post(&v2).await;
    assert_eq!(status, 200, "v2 adds optional fields with defaults: {second}");
    assert_ne!(first["id"], second["id"]);
    let (status, again) = post(&v2).await;
    assert_eq!((status, &again["id"]), (200, &second["id"]), "the same schema again: the same id");
    let (status, third) = post(&v3).await;
    assert_eq!(status, 200, "v3 adds optional fields with defaults: {third}");
    assert_ne!(second["id"], third["id"]);
    let (status, fourth) = post(&v4).await;
    assert_eq!(status, 200, "v4 adds optional fields with defaults: {fourth}");
    assert_ne!(third["id"], fourth["id"]);
    let (status, fifth) = post(&v5).await;
    assert_eq!(status, 200, "v5 adds optional fields with defaults: {fifth}");
    assert_ne!(fourth["id"], fifth["id"]);
    assert_eq!(registry.versions("evolution-value").len(), 5);
    // The stand-in's check is not vacuous: a field added without a default is refused.
    let strict = v2.replace(
        r#"{"name": "redirects", "type": ["null", "int"], "default": null,"#,
        r#"{"name": "redirects", "type": ["null", "int"],"#,
    );
    assert_ne!(strict, v2);
    let (status, refused) = post(&strict.replace("\"redirects\"", "\"hops\"")).await;
    assert_eq!((status, refused["error_code"].as_u64()), (409, Some(409)), "{refused}");
    // And sitemon's current schema is v5.
    assert_eq!(
        sitemon::wire::fingerprint(sitemon::wire::CURRENT_SCHEMA_JSON),
        sitemon::wire::fingerprint(&v5)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_producer_retries_an_unreachable_registry_at_start() {
    let registry = Registry::start().await;
    registry.set_down(true);
    let s = Setup::new("sitemon-registry-producer-outage").await;
    let addr = sites::start().await;
    let cfg = s.config(&registry, &format!("  - {{name: late-ok, url: 'http://{addr}/ok'}}\n"));
    let producer = {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"));
        cmd.args(["producer", "--once", "-c", &cfg]).envs(s.env()).kill_on_drop(true);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        cmd.spawn().expect("start the producer")
    };
    let tried = support::wait_for(LIMIT, || async { (registry.refused() >= 3).then_some(()) }).await;
    assert!(tried.is_some(), "the producer asked the registry again and again");
    registry.set_down(false);
    let out =
        tokio::time::timeout(LIMIT, producer.wait_with_output()).await.expect("producer exits").unwrap();
    assert!(out.status.success(), "producer: {}", describe(&out));
    let id = registry.versions(&format!("{}-value", s.topic));
    assert_eq!(id.len(), 1);
    let records = topic_payloads(&s.topic, 1).await;
    assert_eq!(records[0][..5], confluent(id[0], &[])[..], "written after registering, with its id");
}
