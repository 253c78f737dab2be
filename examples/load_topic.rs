//! Benchmark helper: fills a Kafka topic with `count` encoded check results as fast as the
//! broker takes them (B2 of `make bench`): slot after slot (one minute apart), every site once
//! per region in each, about one check in ten failing. Usage:
//! `load_topic BOOTSTRAP TOPIC COUNT SITES [REGIONS]`

use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bootstrap, topic, count, sites, regions) = match &args[..] {
        [_, b, t, c, s] => (b, t, c, s, "1"),
        [_, b, t, c, s, r] => (b, t, c, s, r.as_str()),
        _ => {
            eprintln!("usage: load_topic BOOTSTRAP TOPIC COUNT SITES [REGIONS]");
            std::process::exit(64);
        }
    };
    let count: u64 = count.parse().expect("COUNT is a number");
    let sites: u64 = sites.parse().expect("SITES is a number");
    let regions: u64 = regions.parse().expect("REGIONS is a number");
    let names: Vec<String> = match regions {
        1 => vec!["bench".to_owned()],
        n => (0..n).map(|g| format!("region-{g}")).collect(),
    };
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
        let (region, site, slot) = (i % regions, (i / regions) % sites, i / (regions * sites));
        let site = format!("site-{site:06}");
        let t = base + chrono::Duration::seconds(slot as i64 * 60);
        let mut r =
            CheckResult::new(&site, "http://127.0.0.1/", &names[region as usize], t, t, CheckStatus::Success);
        r.status_code = Some(200);
        r.http_version = Some("HTTP/1.1".into());
        (r.connect_us, r.ttfb_us, r.total_us, r.body_bytes) = (Some(80), Some(400), Some(450), Some(2));
        // Judged as the producer's results are: incidents, quorum and staleness all apply.
        r.interval_ms = Some(60_000);
        if i.wrapping_mul(2_654_435_761) % 10 == 0 {
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
