//! Benchmark helper (B6 of `make bench`): publishes check results in real time, one per site
//! every second, so that incidents open and close at a steady rate and then a storm breaks.
//! `flap-NNN` sites each fail for 30 s of every 60 s from their phase on, the phases spread
//! evenly (SITES/60 openings and as many closings a second, no burst at the start); from second STORM_AT the `storm-NNNN` sites fail
//! together for 20 s. Usage: `flap_topic BOOTSTRAP TOPIC SITES STORM_SITES STORM_AT SECONDS`

use std::time::Duration;

use chrono::Utc;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use sitemon::domain::{CheckResult, CheckStatus, FailureKind};

fn result(site: &str, at: chrono::DateTime<Utc>, up: bool) -> CheckResult {
    let mut r = CheckResult::new(site, "http://127.0.0.1/", "bench", at, at, CheckStatus::Success);
    r.interval_ms = Some(1000);
    r.status_code = Some(200);
    (r.connect_us, r.ttfb_us, r.total_us, r.body_bytes) = (Some(80), Some(400), Some(450), Some(2));
    if !up {
        r.fail(FailureKind::UnexpectedStatus, "unexpected status 503");
        r.status_code = Some(503);
    }
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, sites, storm_sites, storm_at, seconds] = &args[..] else {
        eprintln!("usage: flap_topic BOOTSTRAP TOPIC SITES STORM_SITES STORM_AT SECONDS");
        std::process::exit(64);
    };
    let number = |s: &str| -> i64 { s.parse().expect("a number") };
    let (sites, storm_sites, storm_at, seconds) =
        (number(sites), number(storm_sites), number(storm_at), number(seconds));
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    // The next whole second.
    let start = chrono::DateTime::from_timestamp(Utc::now().timestamp() + 1, 0).expect("a time");
    for s in 0..seconds {
        let at = start + chrono::Duration::seconds(s);
        if let Ok(wait) = (at - Utc::now()).to_std() {
            std::thread::sleep(wait);
        }
        // Site i is up until its phase, then down for 30 s of every 60: one opening every
        // 60/SITES s from the start, never a burst.
        let flap = |i: i64| {
            let phase = i * 60 / sites.max(1);
            !(s >= phase && (s - phase) % 60 < 30)
        };
        let flaps = (0..sites).map(|i| (format!("flap-{i:03}"), flap(i)));
        let storm =
            (0..storm_sites).map(|i| (format!("storm-{i:04}"), !(storm_at..storm_at + 20).contains(&s)));
        for (site, up) in flaps.chain(storm) {
            let payload = sitemon::wire::encode(&result(&site, at, up));
            let mut record = BaseRecord::to(topic).key(site.as_bytes()).payload(&payload);
            while let Err((_, back)) = producer.send(record) {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
    }
    println!("{seconds} s of results for {sites} flapping and {storm_sites} storm sites");
}
