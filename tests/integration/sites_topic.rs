//! `sitemon sites apply|diff|list` against the real broker: a list published as records keyed by
//! site name (the config's defaults filled in), then only its changes (a tombstone for a site
//! removed); `diff` publishes nothing; a list with problems publishes nothing and names each at
//! its file:line; a credential is never written to the topic.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::support::{self, describe, sitemon, write};

const LIMIT: Duration = Duration::from_secs(90);

fn config(topic: &str) -> String {
    format!(
        "defaults: {{interval: 45s}}\nkafka:\n  bootstrap_servers: {}\n  sites_topic: {topic}\n",
        support::kafka_bootstrap()
    )
}

/// Every record of the topic's one partition, in order: (key, value).
fn records(topic: &str) -> Vec<(String, Option<String>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", support::kafka_bootstrap())
        .set("group.id", support::unique("sites-test"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (_, high) = c.fetch_watermarks(topic, 0, Duration::from_secs(20)).unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while (out.len() as i64) < high {
        assert!(Instant::now() < deadline, "read {} of {high} records", out.len());
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push((m.key().map(text).unwrap_or_default(), m.payload().map(text)));
        }
    }
    out
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let out = sitemon(args, env, LIMIT).await;
    assert!(out.status.success(), "sitemon {}: {}", args.join(" "), describe(&out));
    out
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_is_applied_as_its_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let topic = support::unique("sitemon-sites");
    let cfg = write(dir.path(), "c.yaml", &config(&topic));
    let v1 = write(
        dir.path(),
        "v1.csv",
        "name,url,interval\na,http://a.example/,10s\nb,http://b.example/,45s\nc,http://c.example/,30s\n",
    );
    let env = [("SITE_TOKEN", "tok-s3cret")];
    let out = run(&["sites", "apply", "-c", &cfg, "-f", &v1, "--partitions", "1"], &env).await;
    assert_eq!(
        stdout(&out),
        format!(
            "+ a\n+ b\n+ c\n3 added, 0 changed, 0 removed, 0 unchanged\npublished 3 changes to {topic}\n"
        )
    );
    let list = stdout(&run(&["sites", "list", "-c", &cfg], &env).await);
    assert!(list.contains("a     http://a.example/  10s") && list.ends_with("3 sites\n"), "{list}");

    // The same list again: nothing to publish.
    let out = run(&["sites", "apply", "-c", &cfg, "-f", &v1], &env).await;
    assert_eq!(stdout(&out), "0 added, 0 changed, 0 removed, 3 unchanged\n");
    assert_eq!(records(&topic).len(), 3);

    // As YAML: a as it was, b's interval changed, c removed, d added (its interval from the
    // defaults) with a credential from the environment.
    let v2 = write(
        dir.path(),
        "v2.yaml",
        "- {name: a, url: 'http://a.example/', interval: 10s}\n- {name: b, url: 'http://b.example/', interval: 20s}\n\
         - {name: d, url: 'https://d.example/', headers: {Authorization: 'Bearer ${SITE_TOKEN}'}}\n",
    );
    let diff = "+ d\n~ b: interval\n- c\n1 added, 1 changed, 1 removed, 1 unchanged\n";
    assert_eq!(stdout(&run(&["sites", "diff", "-c", &cfg, "-f", &v2], &env).await), diff);
    assert_eq!(records(&topic).len(), 3, "diff publishes nothing");
    let out = run(&["sites", "apply", "-c", &cfg, "-f", &v2], &env).await;
    assert_eq!(stdout(&out), format!("{diff}published 3 changes to {topic}\n"));

    let all = records(&topic);
    let last: Vec<(&str, bool)> = all[3..].iter().map(|(k, v)| (k.as_str(), v.is_some())).collect();
    assert_eq!(last, [("d", true), ("b", true), ("c", false)], "a tombstone for c: {all:?}");
    let d = all[3].1.as_deref().unwrap();
    assert!(d.contains("Bearer ${SITE_TOKEN}") && d.contains(r#""interval":"45s""#), "{d}");
    assert!(all.iter().all(|(_, v)| !v.as_deref().unwrap_or("").contains("s3cret")));
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["sites", "list", "-c", &cfg, "--json"], &env).await)).unwrap();
    let names: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(names, ["a", "b", "d"]);
    assert_eq!(json["b"]["interval"], "20s");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_with_problems_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let topic = support::unique("sitemon-sites");
    let cfg = write(dir.path(), "c.yaml", &config(&topic));
    let good = write(dir.path(), "good.yaml", "- {name: a, url: 'http://a.example/'}\n");
    run(&["sites", "apply", "-c", &cfg, "-f", &good, "--partitions", "1"], &[]).await;

    let bad = write(
        dir.path(),
        "bad.yaml",
        "- {name: a, url: 'http://a.example/'}\n- {name: b, url: notaurl}\n- {name: a, url: 'http://c.example/'}\n\
         - {name: e, url: 'http://e.example/', headers: {X-Api-Key: wr1tten-out}}\n",
    );
    let out = sitemon(&["sites", "apply", "-c", &cfg, "-f", &bad], &[], LIMIT).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for place in ["bad.yaml:2", "bad.yaml:3", "bad.yaml:4"] {
        assert!(err.contains(place), "{place}: {err}");
    }
    assert!(!err.contains("wr1tten-out"), "{err}");
    assert_eq!(records(&topic).len(), 1, "nothing published");

    // Brokers that do not answer: named, with what to check, in bounded time.
    let down = write(dir.path(), "down.yaml", "kafka:\n  bootstrap_servers: 127.0.0.1:1\n  sites_topic: s\n");
    let started = Instant::now();
    let out = sitemon(&["sites", "list", "-c", &down], &[], LIMIT).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: reading the sites topic `s` at 127.0.0.1:1 (check that the brokers are running"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(40), "{:?}", started.elapsed());

    let bare = write(
        dir.path(),
        "bare.yaml",
        &format!("kafka:\n  bootstrap_servers: {}\n", support::kafka_bootstrap()),
    );
    let out = sitemon(&["sites", "list", "-c", &bare], &[], LIMIT).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kafka.sites_topic: missing"),
        "{}",
        describe(&out)
    );
}

/// Partitions added under a list: a site's later records land apart from its earlier ones, so
/// the topic no longer says one thing per site; `sites` says so instead of guessing.
#[tokio::test(flavor = "multi_thread")]
async fn a_topic_whose_partitions_were_added_is_refused() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::client::DefaultClientContext;
    let dir = tempfile::tempdir().unwrap();
    let topic = support::unique("sitemon-sites");
    let cfg = write(dir.path(), "c.yaml", &config(&topic));
    let list = |interval: &str| {
        (0..12)
            .map(|i| format!("- {{name: s{i}, url: 'http://s{i}.example/', interval: {interval}}}\n"))
            .collect::<String>()
    };
    let v1 = write(dir.path(), "v1.yaml", &list("10s"));
    run(&["sites", "apply", "-c", &cfg, "-f", &v1, "--partitions", "1"], &[]).await;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", support::kafka_bootstrap()).create().unwrap();
    let added =
        admin.create_partitions([&NewPartitions::new(&topic, 4)], &AdminOptions::new()).await.unwrap();
    assert!(added.iter().all(Result::is_ok), "{added:?}");
    let v2 = write(dir.path(), "v2.yaml", &list("20s"));
    run(&["sites", "apply", "-c", &cfg, "-f", &v2], &[]).await;
    let out = sitemon(&["sites", "list", "-c", &cfg], &[], LIMIT).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("of the sites topic") && err.contains("delete the topic and apply the list again"),
        "{err}"
    );
}
