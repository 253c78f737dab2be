//! Interop with an independent Avro implementation: Apache Avro's Java library, driven by
//! `scripts/avro-peer` (tests/interop/AvroPeer.java), which knows the schemas only from the
//! .avsc files and computes their fingerprints itself. It agrees with sitemon on every schema's
//! canonical form and fingerprint; the single-object records it writes are stored by `sitemon
//! consumer`; and the records sitemon writes (the producer's and `wire::encode`'s) decode in it,
//! by fingerprint, to the same values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind};
use sqlx::Row;
use tokio::io::AsyncWriteExt;

use crate::support::{self, describe, sitemon, sites, write};

const LIMIT: Duration = Duration::from_secs(120);

/// The header apache-avro 0.22 made sitemon write for schemas/check_result.v1.avsc (records in
/// topics carry it): not the specification's fingerprint, so the reference implementation does
/// not know it.
const LEGACY_V1: [u8; 8] = [0x15, 0x37, 0x16, 0xd9, 0x88, 0xe9, 0x58, 0x58];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// schemas/*.avsc, sorted.
fn schema_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("schemas"))
        .expect("schemas/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "avsc"))
        .collect();
    files.sort();
    files
}

pub(crate) fn current_schema() -> String {
    root().join("schemas/check_result.avsc").display().to_string()
}

/// Runs `scripts/avro-peer` (installing it if needed) with `input` on stdin; returns its stdout.
pub(crate) async fn peer(args: &[String], input: &str) -> String {
    let mut child = tokio::process::Command::new(root().join("scripts/avro-peer"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run scripts/avro-peer");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).await.expect("write to the peer");
    drop(stdin);
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("scripts/avro-peer finishes")
        .expect("scripts/avro-peer output");
    let stdout = String::from_utf8(out.stdout).expect("the peer prints UTF-8");
    assert!(
        out.status.success(),
        "scripts/avro-peer {}: {:?}\n{stdout}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

/// file path → (fingerprint as header bytes in hex, Parsing Canonical Form), by the peer.
async fn peer_fingerprints() -> HashMap<String, (String, String)> {
    let files: Vec<String> = schema_files().iter().map(|p| p.display().to_string()).collect();
    let args: Vec<String> = std::iter::once("fingerprint".to_owned()).chain(files.iter().cloned()).collect();
    let out = peer(&args, "").await;
    let table: HashMap<String, (String, String)> = out
        .lines()
        .map(|l| {
            let mut cols = l.splitn(3, '\t');
            let (file, fp, form) = (cols.next(), cols.next(), cols.next());
            (file.unwrap().to_owned(), (fp.expect("fingerprint").to_owned(), form.expect("form").to_owned()))
        })
        .collect();
    assert_eq!(table.len(), files.len(), "one line per schema:\n{out}");
    table
}

#[tokio::test(flavor = "multi_thread")]
async fn fingerprints_and_canonical_forms_agree_with_the_reference_implementation() {
    let peer = peer_fingerprints().await;
    for file in schema_files() {
        let json = std::fs::read_to_string(&file).unwrap();
        let (fp, form) = &peer[&file.display().to_string()];
        let ours = sitemon::wire::fingerprint(&json).unwrap();
        assert_eq!(hex(&ours), *fp, "{}", file.display());
        assert_eq!(sitemon::wire::parsing_canonical_form(&json).unwrap(), *form, "{}", file.display());
        assert_ne!(ours, LEGACY_V1, "{}", file.display());
    }
    // And that is what every record's header carries.
    let r = CheckResult::new("s", "http://x/", "r", Utc::now(), Utc::now(), CheckStatus::Success);
    let header = sitemon::wire::encode(&r)[..10].to_vec();
    assert_eq!(hex(&header), format!("c301{}", peer[&current_schema()].0));
}

/// Results that use every field, both union branches, every status, and text that needs
/// escaping or more than ASCII.
pub(crate) fn samples(prefix: &str, now: DateTime<Utc>) -> Vec<CheckResult> {
    let at = |s: i64| now - chrono::Duration::seconds(s);
    let mut full = CheckResult::new(
        &format!("{prefix}-zürich"),
        "https://例え.test/path?q=\"1\"",
        "interop",
        at(30),
        at(29),
        CheckStatus::Success,
    );
    full.status_code = Some(200);
    full.http_version = Some("HTTP/1.1".into());
    full.remote_addr = Some("[::1]:443".into());
    (full.dns_us, full.connect_us, full.tls_us) = (Some(0), Some(2), Some(3_000_000_000));
    (full.ttfb_us, full.total_us, full.body_bytes) = (Some(4), Some(i64::MAX), Some(12_345));
    full.pattern = Some("ok|fine".into());
    full.pattern_matched = Some(true);
    full.tls_not_after = Some(now + chrono::Duration::days(90));
    let mut timeout = CheckResult::new(
        &format!("{prefix}-slow"),
        "http://x/",
        "interop",
        at(20),
        at(19),
        CheckStatus::Success,
    );
    timeout.fail(FailureKind::Timeout, "timed out after 5s");
    timeout.total_us = Some(5_000_123);
    // The slots missed just before it (schema v5).
    (timeout.missed_since, timeout.missed_slots) = (Some(at(25)), Some(5));
    let mut status = CheckResult::new(
        &format!("{prefix}-503"),
        "http://x/",
        "interop",
        at(10),
        at(10),
        CheckStatus::Success,
    );
    status.fail(FailureKind::UnexpectedStatus, "status \"503\"\n\tretry later");
    status.status_code = Some(503);
    status.pattern = Some(String::new());
    status.pattern_matched = Some(false);
    let missed = CheckResult::new(
        &format!("{prefix}-missed"),
        "http://x/",
        "interop",
        at(5),
        at(4),
        CheckStatus::Missed,
    );
    vec![full, timeout, status, missed]
}

/// A result as the peer prints a decoded record: union values bare, enums as symbols, logical
/// types as their underlying strings and longs.
fn plain(r: &CheckResult) -> Value {
    json!({
        "check_id": r.check_id.to_string(),
        "site_id": r.site_id,
        "url": r.url,
        "region": r.region,
        "scheduled_at": r.scheduled_at.timestamp_micros(),
        "started_at": r.started_at.timestamp_micros(),
        "status": r.status.as_str(),
        "failure_kind": r.failure_kind.map(FailureKind::as_str),
        "error": r.error,
        "status_code": r.status_code,
        "http_version": r.http_version,
        "remote_addr": r.remote_addr,
        "dns_us": r.dns_us,
        "connect_us": r.connect_us,
        "tls_us": r.tls_us,
        "ttfb_us": r.ttfb_us,
        "total_us": r.total_us,
        "body_bytes": r.body_bytes,
        "pattern": r.pattern,
        "pattern_matched": r.pattern_matched,
        "tls_not_after": r.tls_not_after.map(|t| t.timestamp_micros()),
        "producer_version": r.producer_version,
        "redirects": r.redirects,
        "interval_ms": r.interval_ms,
        "down_after": r.down_after,
        "up_after": r.up_after,
        "quorum": r.quorum,
        "degraded_above_ms": r.degraded_above_ms,
        "cert_warn_days": r.cert_warn_days,
        "missed_since": r.missed_since.map(|t| t.timestamp_micros()),
        "missed_slots": r.missed_slots,
    })
}

/// A result in Avro's JSON encoding (a union value is `{"branch": value}`), what the peer reads.
pub(crate) fn avro_json(r: &CheckResult) -> String {
    const UNIONS: [(&str, &str); 24] = [
        ("failure_kind", "dev.sitemon.FailureKind"),
        ("error", "string"),
        ("status_code", "int"),
        ("http_version", "string"),
        ("remote_addr", "string"),
        ("dns_us", "long"),
        ("connect_us", "long"),
        ("tls_us", "long"),
        ("ttfb_us", "long"),
        ("total_us", "long"),
        ("body_bytes", "long"),
        ("pattern", "string"),
        ("pattern_matched", "boolean"),
        ("tls_not_after", "long"),
        ("producer_version", "string"),
        ("redirects", "int"),
        ("interval_ms", "long"),
        ("down_after", "int"),
        ("up_after", "int"),
        ("quorum", "int"),
        ("degraded_above_ms", "long"),
        ("cert_warn_days", "int"),
        ("missed_since", "long"),
        ("missed_slots", "int"),
    ];
    let mut v = plain(r);
    for (field, branch) in UNIONS {
        let value = v[field].take();
        v[field] = if value.is_null() { value } else { json!({ branch: value }) };
    }
    v.to_string()
}

pub(crate) fn from_row(row: &sqlx::postgres::PgRow) -> CheckResult {
    let status: String = row.get("status");
    let kind: Option<String> = row.get("failure_kind");
    let code: Option<i32> = row.get("status_code");
    CheckResult {
        check_id: row.get("check_id"),
        site_id: row.get("site_id"),
        url: row.get("url"),
        region: row.get("region"),
        scheduled_at: row.get("scheduled_at"),
        started_at: row.get("started_at"),
        status: CheckStatus::parse(&status).expect("stored status"),
        failure_kind: kind.map(|k| FailureKind::parse(&k).expect("stored failure kind")),
        error: row.get("error"),
        status_code: code.map(|c| u16::try_from(c).expect("stored status code")),
        http_version: row.get("http_version"),
        remote_addr: row.get("remote_addr"),
        dns_us: row.get("dns_us"),
        connect_us: row.get("connect_us"),
        tls_us: row.get("tls_us"),
        ttfb_us: row.get("ttfb_us"),
        total_us: row.get("total_us"),
        body_bytes: row.get("body_bytes"),
        pattern: row.get("pattern"),
        pattern_matched: row.get("pattern_matched"),
        tls_not_after: row.get("tls_not_after"),
        // Schema v2's, v3's and v4's fields are not kept in the history.
        producer_version: None,
        redirects: None,
        interval_ms: None,
        down_after: None,
        up_after: None,
        quorum: None,
        degraded_above_ms: None,
        cert_warn_days: None,
        missed_since: row.get("missed_since"),
        missed_slots: row
            .get::<Option<i32>, _>("missed_slots")
            .map(|n| u32::try_from(n).expect("stored count")),
    }
}

/// Every record's payload in `topic`, once there are `n` of them (or fails after the limit).
pub(crate) async fn topic_payloads(topic: &str, n: usize) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", support::kafka_bootstrap())
        .set("group.id", support::unique("interop-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10)).expect("metadata");
        let mut assignment = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            assignment.add_partition_offset(&topic, p.id(), Offset::Beginning).expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        let deadline = std::time::Instant::now() + LIMIT;
        let mut payloads = Vec::new();
        while payloads.len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} records in {topic}",
                payloads.len()
            );
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                payloads.push(m.expect("record").payload().expect("payload").to_vec());
            }
        }
        payloads
    })
    .await
    .expect("reader")
}

#[tokio::test(flavor = "multi_thread")]
async fn records_cross_between_sitemon_and_the_reference_implementation() {
    let now = Utc.timestamp_micros(Utc::now().timestamp_micros()).unwrap();
    let fingerprints = peer_fingerprints().await;
    let spec_header = format!("c301{}", fingerprints[&current_schema()].0);

    // 1. The peer writes single-object records of the current schema (BinaryMessageEncoder).
    let from_peer = samples("peer", now);
    let input: String = from_peer.iter().map(|r| avro_json(r) + "\n").collect();
    let encoded = peer(&["encode".into(), current_schema()], &input).await;
    let peer_records: Vec<Vec<u8>> = encoded.lines().map(unhex).collect();
    assert_eq!(peer_records.len(), from_peer.len(), "{encoded}");
    for (bytes, r) in peer_records.iter().zip(&from_peer) {
        assert_eq!(hex(&bytes[..10]), spec_header, "the peer's header");
        assert_eq!(*bytes, sitemon::wire::encode(r), "sitemon writes the same bytes as the peer");
    }
    // A record as sitemon wrote it before (apache-avro's fingerprint), still in the topic.
    let legacy = CheckResult::new("legacy", "http://x/", "interop", now, now, CheckStatus::Success);
    let mut legacy_record = sitemon::wire::encode(&legacy);
    legacy_record[2..10].copy_from_slice(&LEGACY_V1);
    // Those builds wrote schema v1, whose datum lacks the ten fields v2 to v5 added (all null).
    assert_eq!(legacy_record[legacy_record.len() - 10..], [0; 10]);
    legacy_record.truncate(legacy_record.len() - 10);

    // 2. Into one topic: the peer's records, the legacy one, and a `sitemon producer --once`
    //    round of two local sites; then `sitemon consumer` stores the topic.
    let db = support::fresh_database().await;
    let topic = support::unique("sitemon-interop");
    let bootstrap = support::kafka_bootstrap();
    let env = [("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()), ("SITEMON_TEST_DATABASE_URL", db.as_str())];
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).set("acks", "all").create().unwrap();
    let mut sent =
        peer_records.iter().zip(&from_peer).map(|(b, r)| (r.site_id.as_str(), b)).collect::<Vec<_>>();
    sent.push(("legacy", &legacy_record));
    for (key, payload) in sent {
        let record = FutureRecord::to(&topic).key(key).payload(payload);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("produce");
    }
    let addr = sites::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "sitemon.yaml",
        &format!(
            "region: interop\nkafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {topic}\n  group_id: interop\n\
             postgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_size: 10\n  batch_wait: 100ms\nsites:\n\
             \x20 - {{name: produced-ok, url: 'http://{addr}/ok', pattern: 'operational'}}\n\
             \x20 - {{name: produced-error, url: 'http://{addr}/error'}}\n"
        ),
    );
    let out = sitemon(&["producer", "--once", "-c", &cfg], &env, LIMIT).await;
    assert!(out.status.success(), "producer: {}", describe(&out));
    let out = sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &env, LIMIT).await;
    assert!(out.status.success(), "consumer: {}", describe(&out));

    let mut conn = support::connect(&db).await;
    let dead: Vec<String> =
        sqlx::query_scalar("SELECT error FROM dead_letters").fetch_all(&mut conn).await.unwrap();
    assert_eq!(dead, Vec::<String>::new(), "no dead letters");
    let stored: HashMap<uuid::Uuid, CheckResult> = sqlx::query("SELECT * FROM check_results")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let r = from_row(row);
            (r.check_id, r)
        })
        .collect();
    assert_eq!(stored.len(), from_peer.len() + 1 + 2, "every record stored once");
    for r in from_peer.iter().chain([&legacy]) {
        assert_eq!(stored.get(&r.check_id), Some(r), "stored as written");
    }
    let produced: Vec<&CheckResult> =
        stored.values().filter(|r| r.site_id.starts_with("produced-")).collect();
    assert_eq!(produced.len(), 2);

    // 3. The peer decodes what sitemon wrote, finding the writer schema by the fingerprint it
    //    computed from the files: every record of the topic, and `wire::encode`'s samples. The
    //    legacy record is the one it cannot place (that header is not the specification's).
    let from_sitemon = samples("sitemon", now);
    let topic_records = topic_payloads(&topic, from_peer.len() + 1 + 2).await;
    let lines: Vec<Vec<u8>> =
        topic_records.into_iter().chain(from_sitemon.iter().map(sitemon::wire::encode)).collect();
    let input: String = lines.iter().map(|b| hex(b) + "\n").collect();
    let mut args = vec!["decode".to_owned(), current_schema()];
    args.extend(schema_files().iter().map(|p| p.display().to_string()));
    let decoded = peer(&args, &input).await;
    let decoded: Vec<&str> = decoded.lines().collect();
    assert_eq!(decoded.len(), lines.len(), "one line per record:\n{}", decoded.join("\n"));
    // The history does not keep v3's and v4's fields; the producer stamped its sites' (defaults
    // here).
    let stamped = |r: &CheckResult| {
        let mut r = r.clone();
        if r.site_id.starts_with("produced-") {
            (r.interval_ms, r.down_after, r.up_after) = (Some(30_000), Some(3), Some(1));
            r.cert_warn_days = Some(sitemon::domain::DEFAULT_CERT_WARN_DAYS);
        }
        r
    };
    let mut expected: HashMap<String, Value> = stored
        .values()
        .map(stamped)
        .chain(from_sitemon.clone())
        .map(|r| (r.check_id.to_string(), plain(&r)))
        .collect();
    let mut unplaced = 0;
    for (line, bytes) in decoded.iter().zip(&lines) {
        if bytes[2..10] == LEGACY_V1 {
            assert!(line.starts_with("error: MissingSchemaException"), "legacy header: {line}");
            unplaced += 1;
            continue;
        }
        let got: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let id = got["check_id"].as_str().unwrap_or_else(|| panic!("no check_id: {line}")).to_owned();
        let want = expected.remove(&id).unwrap_or_else(|| panic!("unexpected or repeated record: {line}"));
        assert_eq!(got, want, "decoded by the peer");
    }
    assert_eq!(unplaced, 1);
    let legacy_id = legacy.check_id.to_string();
    assert_eq!(expected.keys().collect::<Vec<_>>(), vec![&legacy_id], "every other record decoded");
}
