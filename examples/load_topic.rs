//! Benchmark helper: fills a Kafka topic with `count` encoded check results as fast as the
//! broker takes them (B2 of `make bench`). Usage:
//! `load_topic BOOTSTRAP TOPIC COUNT SITES`

use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, count, sites] = &args[..] else {
        eprintln!("usage: load_topic BOOTSTRAP TOPIC COUNT SITES");
        std::process::exit(64);
    };
    let count: u64 = count.parse().expect("COUNT is a number");
    let sites: u64 = sites.parse().expect("SITES is a number");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let start = Instant::now();
    let base = Utc::now() - chrono::Duration::hours(1);
    for i in 0..count {
        let site = format!("site-{:06}", i % sites);
        let t = base + chrono::Duration::milliseconds((i / sites) as i64 * 1000);
        let mut r = CheckResult::new(&site, "http://127.0.0.1/", "bench", t, t, CheckStatus::Success);
        r.status_code = Some(200);
        r.http_version = Some("HTTP/1.1".into());
        (r.connect_us, r.ttfb_us, r.total_us, r.body_bytes) = (Some(80), Some(400), Some(450), Some(2));
        if i % 10 == 0 {
            r.fail(FailureKind::UnexpectedStatus, "unexpected status 503");
            r.status_code = Some(503);
        }
        let payload = sitemon::wire::encode(&r);
        let mut record = BaseRecord::to(topic).key(site.as_bytes()).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let secs = start.elapsed().as_secs_f64();
    println!("{count} records in {secs:.1} s ({:.0}/s)", count as f64 / secs);
}
