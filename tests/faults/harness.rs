//! What the fault tests share: one-at-a-time execution, service control that always restores
//! the services, running sitemon processes with their logs, and counting rows and records.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support;

/// Fault tests take turns: they stop services the others need.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn services(action: &str) {
    let script = std::env::var("SITEMON_SERVICES").expect("SITEMON_SERVICES is not set: run `make test`");
    let status = std::process::Command::new(script).arg(action).status().expect("run scripts/services");
    assert!(status.success(), "scripts/services {action} failed");
}

/// Stops a service; starts it again when dropped, even if the test fails in between.
pub struct Stopped(&'static str);

impl Stopped {
    pub fn kafka() -> Stopped {
        services("stop-kafka");
        Stopped("kafka")
    }
    pub fn postgres() -> Stopped {
        services("stop-postgres");
        Stopped("postgres")
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        services(&format!("start-{}", self.0));
    }
}

/// A running `sitemon` with its stderr collected.
pub struct Running {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
}

pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sitemon"));
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn sitemon");
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("piped stderr");
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    Running { child, log }
}

impl Running {
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let ok = std::process::Command::new("kill").args([sig, &pid]).status().expect("kill").success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Waits for the exit (at most `limit`) and returns the exit code and the log.
    pub async fn finish(self, limit: Duration) -> (Option<i32>, String) {
        let (code, log, _) = self.finish_timed(limit).await;
        (code, log)
    }

    /// As [`Running::finish`], also returning how long the exit took.
    pub async fn finish_timed(mut self, limit: Duration) -> (Option<i32>, String, Duration) {
        let started = tokio::time::Instant::now();
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!("sitemon still running after {limit:?}:\n{}", self.log.lock().unwrap())
            })
            .expect("wait");
        let took = started.elapsed();
        // Let the log reader catch the last lines.
        let _ = support::wait_for(Duration::from_secs(2), || async {
            self.log.lock().unwrap().contains("stopped").then_some(())
        })
        .await;
        (status.code(), self.log.lock().unwrap().clone(), took)
    }
}

/// `GET path` on a loopback port: the status code and body, `None` while nothing answers.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((code, body))
}

/// A free loopback address for `--listen`.
pub fn listen_address() -> (u16, String) {
    let port = support::sites::closed_port().port; // free now; sitemon binds it
    (port, format!("127.0.0.1:{port}"))
}

/// The number in `key=N` on the last log line that has it.
pub fn logged_count(log: &str, key: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        let at = l.find(&format!("{key}="))? + key.len() + 1;
        l[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    })
}

/// Records in a topic (sum of high watermarks).
pub fn topic_records(topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", support::kafka_bootstrap())
        .set("group.id", "sitemon-fault-tests-watermarks")
        .create()
        .expect("consumer");
    let Ok(md) = c.fetch_metadata(Some(topic), Duration::from_secs(5)) else { return 0 };
    let Some(t) = md.topics().first() else { return 0 };
    t.partitions()
        .iter()
        .map(|p| c.fetch_watermarks(topic, p.id(), Duration::from_secs(5)).map(|(_, hi)| hi).unwrap_or(0))
        .sum()
}

pub async fn rows(db: &str, sql: &str) -> i64 {
    let mut c = support::connect(db).await;
    sqlx::query_scalar(sql).fetch_one(&mut c).await.expect("count query")
}

/// Rows in history; `None` while the database is unreachable.
pub async fn try_history(db: &str) -> Option<i64> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(db).await.ok()?;
    sqlx::query_scalar("SELECT count(*) FROM check_results").fetch_one(&mut c).await.ok()
}

/// A config for `n` sites on the local test site, publishing to `topic`, storing in `db`.
pub fn config(
    addr: std::net::SocketAddr,
    n: usize,
    interval: &str,
    topic: &str,
    group: &str,
    extra: &str,
) -> String {
    let mut text = format!(
        "region: faults\nkafka:\n  bootstrap_servers: ${{KAFKA_BOOTSTRAP_SERVERS}}\n  topic: {topic}\n  group_id: {group}\n  properties:\n    session.timeout.ms: 6000\n    heartbeat.interval.ms: 1000\npostgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_size: 25\n  batch_wait: 100ms\n{extra}sites:\n"
    );
    for i in 0..n {
        text.push_str(&format!(
            "  - {{name: site-{i:04}, url: 'http://{addr}/ok', interval: {interval}, timeout: 900ms}}\n"
        ));
    }
    text
}

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub topic: String,
    pub bootstrap: String,
}

impl Setup {
    pub async fn new() -> Setup {
        let db = support::fresh_database().await;
        Setup {
            dir: tempfile::tempdir().unwrap(),
            db,
            topic: support::unique("sitemon-faults"),
            bootstrap: support::kafka_bootstrap(),
        }
    }

    pub fn env(&self) -> [(&str, &str); 2] {
        [
            ("KAFKA_BOOTSTRAP_SERVERS", self.bootstrap.as_str()),
            ("SITEMON_TEST_DATABASE_URL", self.db.as_str()),
        ]
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        support::write(self.dir.path(), name, text)
    }

    /// Adds one `--once` round of `n` sites to the topic; returns the config path.
    pub async fn preload(&self, addr: std::net::SocketAddr, n: usize) -> String {
        let before = topic_records(&self.topic);
        let cfg = self.write("preload.yaml", &config(addr, n, "1m", &self.topic, "faults", ""));
        let out =
            support::sitemon(&["producer", "--once", "-c", &cfg], &self.env(), Duration::from_secs(120))
                .await;
        assert!(out.status.success(), "preload: {}", support::describe(&out));
        assert_eq!(topic_records(&self.topic), before + n as i64);
        cfg
    }
}

/// Sites whose `site_status` differs from what the in-order, exactly-once stream of their
/// stored history gives (newest non-MISSED result; failures in the trailing run; its start).
pub async fn status_mismatches(db: &str) -> Vec<String> {
    use chrono::{DateTime, Utc};
    use std::collections::BTreeMap;
    let mut c = support::connect(db).await;
    let history: Vec<(String, String, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT site_id, region, scheduled_at, status FROM check_results WHERE status <> 'MISSED' \
         ORDER BY site_id, region, scheduled_at",
    )
    .fetch_all(&mut c)
    .await
    .expect("history");
    // (status_since, consecutive_failures, newest scheduled_at) per (site, region).
    type Status = (DateTime<Utc>, i32, DateTime<Utc>);
    let mut want: BTreeMap<(String, String), Status> = BTreeMap::new();
    for (site, region, at, status) in history {
        let failed = status != "SUCCESS";
        let e = want.entry((site, region)).or_insert((at, 0, at));
        let was_failed = e.1 > 0;
        let first = e.2 == at && e.1 == 0 && e.0 == at;
        if first || failed != was_failed {
            *e = (at, i32::from(failed), at);
        } else {
            *e = (e.0, e.1 + i32::from(failed), at);
        }
    }
    type Row = (String, String, DateTime<Utc>, i32, DateTime<Utc>);
    let got: Vec<Row> = sqlx::query_as(
        "SELECT site_id, region, status_since, consecutive_failures, scheduled_at FROM site_status",
    )
    .fetch_all(&mut c)
    .await
    .expect("site_status");
    let mut wrong = Vec::new();
    for (site, region, since, failures, at) in &got {
        let w = want.remove(&(site.clone(), region.clone()));
        if w != Some((*since, *failures, *at)) {
            wrong.push(format!("{site}/{region}: stored ({since}, {failures}, {at}), history gives {w:?}"));
        }
    }
    wrong.extend(want.keys().map(|(s, r)| format!("{s}/{r}: in history but not in site_status")));
    wrong
}

/// A plain Kafka producer for writing records the way another client would.
pub fn raw_producer(bootstrap: &str) -> rdkafka::producer::FutureProducer {
    ClientConfig::new().set("bootstrap.servers", bootstrap).set("acks", "all").create().expect("producer")
}

/// Every record's payload in `topic`, once it holds at least `n` (all partitions, from the start).
pub fn topic_payloads(topic: &str, n: usize) -> Vec<Vec<u8>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", support::kafka_bootstrap())
        .set("group.id", support::unique("faults-events-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    loop {
        match c.poll(Duration::from_millis(300)) {
            Some(m) => out.push(m.expect("record").payload().unwrap_or_default().to_vec()),
            // Read on past `n` until the topic is quiet: repeats count too.
            None if out.len() >= n => break,
            None => assert!(std::time::Instant::now() < deadline, "{} of {n} events on {topic}", out.len()),
        }
    }
    out
}
