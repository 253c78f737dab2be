//! Fault 5: poison records of many kinds are quarantined in `dead_letters` with their raw bytes
//! and position; the healthy records around them are stored and the consumer keeps going.

use std::time::Duration;

use chrono::Utc;
use rdkafka::producer::FutureRecord;
use sitemon::domain::{CheckResult, CheckStatus};
use sqlx::Row;

use crate::harness::{self, ONE_AT_A_TIME, Setup, rows};
use crate::support::{self, describe, sitemon};

fn healthy(i: usize) -> Vec<u8> {
    let t = Utc::now();
    let r = CheckResult::new(&format!("healthy-{i}"), "http://x/", "faults", t, t, CheckStatus::Success);
    sitemon::wire::encode(&r)
}

/// (what, payload); `None` is a record without a value.
fn poison() -> Vec<(&'static str, Option<Vec<u8>>)> {
    let good = healthy(999);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        Some(b)
    };
    let t = Utc::now();
    let mut nul = CheckResult::new("bad\0site", "http://x/", "faults", t, t, CheckStatus::Success);
    nul.error = Some("nul in the site id".into());
    vec![
        ("empty payload", Some(Vec::new())),
        ("no payload (tombstone)", None),
        ("json text", Some(br#"{"site_id":"x","status":"UP"}"#.to_vec())),
        ("confluent framing without a registry", Some(vec![0, 0, 0, 0, 42, 2, 4, 6])),
        ("unknown schema fingerprint", with(&|b| b[2..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]))),
        ("truncated datum", with(&|b| b.truncate(b.len() - 5))),
        ("trailing bytes", with(&|b| b.extend_from_slice(b"tail"))),
        ("header only", Some(good[..10].to_vec())),
        ("short magic", Some(vec![0xC3, 0x01, 0x00])),
        ("random bytes", Some((0u8..=255).rev().collect())),
        ("value the database rejects (NUL in text)", Some(sitemon::wire::encode(&nul))),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_records_are_quarantined_and_the_consumer_goes_on() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let s = Setup::new().await;
    let producer = harness::raw_producer(&s.bootstrap);
    let bad = poison();
    let mut sent_bad = Vec::new();
    let mut healthy_count = 0;
    // Healthy records before, between and after the poison, all on one partition (one key).
    for (i, (what, payload)) in bad.iter().enumerate() {
        for j in 0..3 {
            let p = healthy(i * 10 + j);
            let rec = FutureRecord::to(&s.topic).key("k").payload(&p);
            producer.send(rec, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
            healthy_count += 1;
        }
        let mut rec: FutureRecord<str, [u8]> = FutureRecord::to(&s.topic).key("k");
        if let Some(p) = payload {
            rec = rec.payload(p.as_slice());
        }
        let delivery = producer.send(rec, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
        sent_bad.push((*what, payload.clone(), delivery.offset));
    }
    let p = healthy(10_000);
    producer
        .send(FutureRecord::to(&s.topic).key("k").payload(&p), Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    healthy_count += 1;

    let cfg =
        s.write("c.yaml", &harness::config("127.0.0.1:1".parse().unwrap(), 1, "1m", &s.topic, "faults", ""));
    let out =
        sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &s.env(), Duration::from_secs(120))
            .await;
    assert!(out.status.success(), "{}", describe(&out));

    assert_eq!(
        rows(&s.db, "SELECT count(*) FROM check_results").await,
        healthy_count,
        "healthy records stored"
    );
    let mut c = support::connect(&s.db).await;
    let quarantined = sqlx::query(
        "SELECT topic, kafka_partition, kafka_offset, record_key, payload, error FROM dead_letters ORDER BY kafka_offset",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(quarantined.len(), sent_bad.len(), "one dead letter per poison record");
    for (row, (what, payload, offset)) in quarantined.iter().zip(&sent_bad) {
        assert_eq!(row.get::<String, _>("topic"), s.topic, "{what}");
        assert_eq!(row.get::<i64, _>("kafka_offset"), *offset, "{what}");
        assert_eq!(
            row.get::<Option<Vec<u8>>, _>("record_key").as_deref(),
            Some(&b"k"[..]),
            "{what}: key kept"
        );
        assert_eq!(row.get::<Option<Vec<u8>>, _>("payload"), *payload, "{what}: raw bytes kept");
        assert!(!row.get::<String, _>("error").is_empty(), "{what}: reason recorded");
    }
}
