//! Fault 6: records crafted by something other than sitemon — times out of range, before the
//! retention window or far in the future, NUL bytes in every string field, ids that are not
//! UUIDs, negative numbers, unknown enum symbols, oversized strings — each between valid
//! neighbours of the same partition. The consumer neither panics nor stalls: each crafted record
//! is a dead letter with its reason, every neighbour is stored, no crafted record moves the
//! site's latest status, and no history partition is made for a day the retention would drop.

use std::time::Duration;

use chrono::Utc;
use rdkafka::producer::FutureRecord;
use sqlx::Row;

use crate::harness::{self, ONE_AT_A_TIME, Setup, rows};
use crate::support::{self, describe, sitemon};

/// One field value of the datum, written the way the Avro specification says, by this test's
/// own encoder (not sitemon's), so that it can write what sitemon never would.
#[derive(Clone)]
enum V {
    Str(Vec<u8>),
    Long(i64),
    Null,
    /// Union branch 1 (the non-null branch of `["null", T]`).
    Some(Box<V>),
    Bool(bool),
}

fn zigzag(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn write(v: &V, out: &mut Vec<u8>) {
    match v {
        V::Str(s) => {
            zigzag(s.len() as i64, out);
            out.extend_from_slice(s);
        }
        V::Long(n) => zigzag(*n, out),
        V::Null => zigzag(0, out),
        V::Some(inner) => {
            zigzag(1, out);
            write(inner, out);
        }
        V::Bool(b) => out.push(u8::from(*b)),
    }
}

const FIELDS: [&str; 31] = [
    "check_id",
    "site_id",
    "url",
    "region",
    "scheduled_at",
    "started_at",
    "status",
    "failure_kind",
    "error",
    "status_code",
    "http_version",
    "remote_addr",
    "dns_us",
    "connect_us",
    "tls_us",
    "ttfb_us",
    "total_us",
    "body_bytes",
    "pattern",
    "pattern_matched",
    "tls_not_after",
    "producer_version",
    "redirects",
    "interval_ms",
    "down_after",
    "up_after",
    "quorum",
    "degraded_above_ms",
    "cert_warn_days",
    "missed_since",
    "missed_slots",
];

fn s(text: &str) -> V {
    V::Str(text.as_bytes().to_vec())
}

fn some(v: V) -> V {
    V::Some(Box::new(v))
}

/// A complete, valid datum for `site` at `at_us` (a failure with every optional field set).
fn valid(site: &str, at_us: i64) -> Vec<V> {
    let t = chrono::DateTime::from_timestamp_micros(at_us).unwrap();
    let id = sitemon::domain::check_id(site, "faults", t);
    vec![
        s(&id.to_string()),
        s(site),
        s("http://x/"),
        s("faults"),
        V::Long(at_us),
        V::Long(at_us + 5),
        V::Long(1),
        some(V::Long(5)),
        some(s("status 503")),
        some(V::Long(503)),
        some(s("HTTP/1.1")),
        some(s("127.0.0.1:80")),
        some(V::Long(1)),
        some(V::Long(2)),
        V::Null,
        some(V::Long(3)),
        some(V::Long(4)),
        some(V::Long(10)),
        some(s("ok")),
        some(V::Bool(false)),
        V::Null,
        some(s("0.1.0")),
        some(V::Long(2)),
        some(V::Long(60_000)),
        some(V::Long(3)),
        some(V::Long(1)),
        V::Null,
        some(V::Long(2_000)),
        some(V::Long(14)),
        // Three slots of the 60 s interval missed before it.
        some(V::Long(at_us - 180_000_000)),
        some(V::Long(3)),
    ]
}

/// The single-object header sitemon reads (magic and the current schema's fingerprint).
fn header() -> Vec<u8> {
    let t = Utc::now();
    let r = sitemon::domain::CheckResult::new(
        "h",
        "http://x/",
        "faults",
        t,
        t,
        sitemon::domain::CheckStatus::Success,
    );
    sitemon::wire::encode(&r)[..10].to_vec()
}

fn record(fields: &[V]) -> Vec<u8> {
    let mut out = header();
    for f in fields {
        write(f, &mut out);
    }
    out
}

/// (what, the datum's fields, a word the dead letter's reason must contain).
fn crafted(site: &str, now_us: i64) -> Vec<(String, Vec<V>, &'static str)> {
    let hour = 3_600_000_000i64;
    let at = |k: i64| now_us - 600_000_000 + k * 1_000_000;
    let mut cases: Vec<(String, Vec<V>, &'static str)> = Vec::new();
    let mut case = |what: String, k: i64, field: &str, v: V, reason: &'static str| {
        let mut f = valid(site, at(k));
        f[FIELDS.iter().position(|n| *n == field).unwrap()] = v;
        cases.push((what, f, reason));
    };
    case(
        "scheduled_at in the year 3000".into(),
        1,
        "scheduled_at",
        V::Long(32_503_680_000_000_000),
        "scheduled_at",
    );
    case("scheduled_at past chrono's range".into(), 2, "scheduled_at", V::Long(i64::MAX), "scheduled_at");
    case("scheduled_at before chrono's range".into(), 3, "scheduled_at", V::Long(i64::MIN), "scheduled_at");
    case("scheduled_at in 1970".into(), 4, "scheduled_at", V::Long(0), "scheduled_at");
    case(
        "scheduled_at two hours ahead".into(),
        5,
        "scheduled_at",
        V::Long(now_us + 2 * hour),
        "scheduled_at",
    );
    case("started_at a day ahead".into(), 6, "started_at", V::Long(now_us + 24 * hour), "started_at");
    case(
        "tls_not_after past chrono's range".into(),
        7,
        "tls_not_after",
        some(V::Long(i64::MAX)),
        "tls_not_after",
    );
    case(
        "tls_not_after in the year 200000".into(),
        8,
        "tls_not_after",
        some(V::Long(6_249_223_680_000_000_000)),
        "tls_not_after",
    );
    for (k, field) in
        ["url", "region", "error", "http_version", "remote_addr", "pattern"].into_iter().enumerate()
    {
        let v = if field == "url" || field == "region" { s("a\0b") } else { some(s("a\0b")) };
        case(format!("NUL in {field}"), 9 + k as i64, field, v, "NUL");
    }
    case("check_id not a UUID".into(), 15, "check_id", s("not-a-uuid"), "check_id");
    case("check_id empty".into(), 16, "check_id", s(""), "check_id");
    // A valid UUID, but another site's id for this slot: stored, it would shadow that site's row.
    let other = sitemon::domain::check_id(
        "other",
        "faults",
        chrono::DateTime::from_timestamp_micros(at(32)).unwrap(),
    );
    case("check_id of another site".into(), 32, "check_id", s(&other.to_string()), "check_id");
    case("negative dns_us".into(), 17, "dns_us", some(V::Long(-1)), "dns_us");
    case("negative total_us".into(), 18, "total_us", some(V::Long(i64::MIN)), "total_us");
    case("negative body_bytes".into(), 19, "body_bytes", some(V::Long(-10)), "body_bytes");
    case("negative status_code".into(), 20, "status_code", some(V::Long(-1)), "status_code");
    case("status_code past u16".into(), 21, "status_code", some(V::Long(70_000)), "status_code");
    case("status_code not HTTP".into(), 22, "status_code", some(V::Long(42)), "status_code");
    case("negative redirects".into(), 60, "redirects", some(V::Long(-1)), "redirects");
    case("negative down_after".into(), 63, "down_after", some(V::Long(-3)), "down_after");
    case("interval_ms past u32".into(), 64, "interval_ms", some(V::Long(1 << 40)), "interval_ms");
    case("negative cert_warn_days".into(), 65, "cert_warn_days", some(V::Long(-14)), "cert_warn_days");
    case(
        "degraded_above_ms past u32".into(),
        66,
        "degraded_above_ms",
        some(V::Long(1 << 40)),
        "degraded_above_ms",
    );
    case("negative missed_slots".into(), 67, "missed_slots", some(V::Long(-3)), "missed_slots");
    case("a run of no missed slots".into(), 68, "missed_slots", some(V::Long(0)), "missed_slots");
    case(
        "a missed run after its record".into(),
        69,
        "missed_since",
        some(V::Long(now_us + 60_000_000)),
        "missed_since",
    );
    case("a missed run without its count".into(), 70, "missed_slots", V::Null, "missed_since");
    case("a missed run longer than its span".into(), 71, "missed_slots", some(V::Long(4)), "missed_slots");
    case("NUL in producer_version".into(), 61, "producer_version", some(s("a\0b")), "NUL");
    case("unknown status symbol".into(), 23, "status", V::Long(7), "status");
    case("unknown failure_kind symbol".into(), 24, "failure_kind", some(V::Long(99)), "failure_kind");
    case("oversized url".into(), 25, "url", s(&"u".repeat(40_000)), "url");
    case("oversized error (600 kB)".into(), 26, "error", some(s(&"e".repeat(600_000))), "error");
    case("invalid UTF-8 in error".into(), 27, "error", some(V::Str(vec![0xff, 0xfe, 0x00])), "error");
    case("union branch out of range".into(), 28, "pattern", V::Long(5), "pattern");
    // Identity fields: another site name, so the test's site keeps its neighbours.
    let mut f = valid("", at(29));
    f[0] =
        s(&sitemon::domain::check_id("", "faults", chrono::DateTime::from_timestamp_micros(at(29)).unwrap())
            .to_string());
    cases.push(("empty site_id".into(), f, "site_id"));
    cases.push(("NUL in site_id".into(), valid("x\0y", at(30)), "NUL"));
    cases.push(("oversized site_id".into(), valid(&"s".repeat(5000), at(31)), "site_id"));
    // Valid in every other way, id included, but 40 days old while the consumer runs with
    // `retention: 30d`: stored, it would create its day's history partition only to be dropped.
    cases.push((
        "scheduled_at 40 days ago, before the retention window".into(),
        valid(site, now_us - 40 * 24 * hour),
        "retention window",
    ));
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn crafted_records_are_dead_letters_and_their_neighbours_are_stored() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let producer = harness::raw_producer(&s.bootstrap);
    let site = "crafted";
    let now_us = Utc::now().timestamp_micros();
    let bad = crafted(site, now_us);
    assert!(bad.len() >= 25, "the table has {} cases", bad.len());
    let mut sent = Vec::new();
    let mut neighbours = 0;
    let mut newest_valid = 0;
    // Each crafted record between two valid ones, all on one partition (one key), in order.
    for (i, (what, fields, reason)) in bad.iter().enumerate() {
        for j in 0..2 {
            let at = now_us - 300_000_000 + (i as i64 * 2 + j) * 1_000_000;
            let p = record(&valid(site, at));
            producer
                .send(FutureRecord::to(&s.topic).key(site).payload(&p), Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            neighbours += 1;
            newest_valid = at;
            if j == 0 {
                let p = record(fields);
                let d = producer
                    .send(FutureRecord::to(&s.topic).key(site).payload(&p), Duration::from_secs(10))
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
                sent.push((what.clone(), p, d.offset, *reason));
            }
        }
    }

    let cfg = s.write(
        "c.yaml",
        &harness::config("127.0.0.1:1".parse().unwrap(), 1, "1m", &s.topic, "faults", "retention: 30d\n"),
    );
    let out =
        sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &s.env(), Duration::from_secs(120))
            .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", describe(&out));

    assert_eq!(rows(&s.db, "SELECT count(*) FROM check_results").await, neighbours, "every neighbour stored");
    let mut c = support::connect(&s.db).await;
    let dead = sqlx::query("SELECT kafka_offset, payload, error FROM dead_letters ORDER BY kafka_offset")
        .fetch_all(&mut c)
        .await
        .unwrap();
    assert_eq!(dead.len(), sent.len(), "one dead letter per crafted record");
    for (row, (what, payload, offset, reason)) in dead.iter().zip(&sent) {
        assert_eq!(row.get::<i64, _>("kafka_offset"), *offset, "{what}");
        assert_eq!(
            row.get::<Option<Vec<u8>>, _>("payload").as_ref(),
            Some(payload),
            "{what}: raw bytes kept"
        );
        let error: String = row.get("error");
        assert!(error.contains(reason), "{what}: reason `{error}` should name {reason}");
        assert!(error.len() <= 4096 + 3, "{what}: the reason is bounded");
    }
    // No crafted record became the site's latest status (a failure "in the future" would
    // otherwise freeze it): the newest valid neighbour is.
    let (at, failures): (chrono::DateTime<Utc>, i32) =
        sqlx::query_as("SELECT scheduled_at, consecutive_failures FROM site_status WHERE site_id = $1")
            .bind(site)
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(at.timestamp_micros(), newest_valid);
    assert_eq!(i64::from(failures), neighbours, "every neighbour is a failure, counted once");
    // No history partition was created for a day before the retention window.
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'check_results'::regclass ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let oldest = format!("check_results_p{}", (Utc::now() - chrono::Duration::days(30)).format("%Y%m%d"));
    assert!(!partitions.is_empty());
    assert!(
        partitions.iter().all(|p| *p >= oldest),
        "partitions before the retention window: {partitions:?}"
    );
}
