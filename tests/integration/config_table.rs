//! Table of malformed configs: each is reported with its location, exits 64, and starts nothing
//! (`sitemon run` would create its SQLite file first thing after validation).

use std::time::Duration;

use crate::support::{describe, sitemon, write};

const SITE: &str = "sites:\n  - name: a\n    url: http://127.0.0.1:1/\n";

/// (what is wrong, config text, text the error must contain)
const CASES: &[(&str, &str, &str)] = &[
    (
        "unknown top-level key",
        "sitez:\n  - {name: a, url: 'http://x/'}\n",
        "bad.yaml:4:1: sitez: unknown field; did you mean `sites`?",
    ),
    (
        "unknown site key",
        "sites:\n  - name: a\n    url: http://x/\n    timout: 5s\n",
        "bad.yaml:4:5: sites[0].timout: unknown field; did you mean `timeout`?",
    ),
    (
        "site is not a mapping",
        "sites:\n  - just-a-string\n",
        "bad.yaml:2:5: sites[0]: expected a mapping, found a string",
    ),
    ("sites is not a list", "sites:\n  a: 1\n", "sites: expected a list, found a mapping"),
    ("empty site list", "sites: []\n", "sites: the site list is empty"),
    ("missing name", "sites:\n  - url: http://x/\n", "sites[0].name: missing"),
    ("missing url", "sites:\n  - name: a\n", "sites[0].url: missing"),
    (
        "url that is not a url",
        "sites:\n  - {name: a, url: 'not a url'}\n",
        "sites[0].url: `not a url` is not a valid url",
    ),
    (
        "unsupported scheme",
        "sites:\n  - {name: a, url: 'ftp://x/'}\n",
        "sites[0].url: scheme `ftp` is not supported",
    ),
    ("url without host", "sites:\n  - {name: a, url: 'http://'}\n", "sites[0].url:"),
    (
        "url with user and password",
        "sites:\n  - name: a\n    url: http://probe:hunter2@x/\n",
        "bad.yaml:3:5: sites[0].url: the url holds credentials (`user:password@`), which would be published and stored with every result; put credentials in a header, e.g. Authorization",
    ),
    (
        "url with a user (token) only",
        "sites:\n  - {name: a, url: 'https://ghp_t0ken@x/'}\n",
        "sites[0].url: the url holds credentials",
    ),
    (
        "invalid url with credentials",
        "sites:\n  - {name: a, url: 'http://probe:hunter2@x:99999/'}\n",
        "sites[0].url: `http://***@x:99999/` is not a valid url",
    ),
    (
        "zero interval",
        "sites:\n  - {name: a, url: 'http://x/', interval: 0s}\n",
        "sites[0].interval: must be greater than zero",
    ),
    (
        "negative interval",
        "sites:\n  - {name: a, url: 'http://x/', interval: -5s}\n",
        "sites[0].interval: must be positive",
    ),
    (
        "duration without unit",
        "sites:\n  - {name: a, url: 'http://x/', interval: 30}\n",
        "sites[0].interval: a duration needs a unit",
    ),
    (
        "duration gibberish",
        "sites:\n  - {name: a, url: 'http://x/', timeout: soon}\n",
        "sites[0].timeout: `soon` is not a duration",
    ),
    (
        "timeout over interval",
        "sites:\n  - {name: a, url: 'http://x/', interval: 5s, timeout: 10s}\n",
        "sites[0].timeout: timeout 10s is longer than the interval 5s",
    ),
    (
        "bad regex",
        "sites:\n  - {name: a, url: 'http://x/', pattern: '('}\n",
        "sites[0].pattern: invalid regex",
    ),
    (
        "duplicate site names",
        "sites:\n  - {name: a, url: 'http://x/'}\n  - {name: a, url: 'http://y/'}\n",
        "bad.yaml:3:6: sites[1].name: duplicate site name `a`",
    ),
    (
        "bad site name",
        "sites:\n  - {name: 'my site!', url: 'http://x/'}\n",
        "sites[0].name: `my site!` is not a valid site name",
    ),
    (
        "empty expected_status",
        "sites:\n  - {name: a, url: 'http://x/', expected_status: []}\n",
        "sites[0].expected_status: list at least one status code",
    ),
    (
        "status code out of range",
        "sites:\n  - {name: a, url: 'http://x/', expected_status: [200, 700]}\n",
        "sites[0].expected_status[1]: 700 is out of range 100..=599",
    ),
    (
        "expected_status not a list",
        "sites:\n  - {name: a, url: 'http://x/', expected_status: 200}\n",
        "sites[0].expected_status: expected a list, found a number",
    ),
    (
        "unsupported method",
        "sites:\n  - {name: a, url: 'http://x/', method: FETCH}\n",
        "sites[0].method: `FETCH` is not a supported method",
    ),
    (
        "missing env var",
        "postgres:\n  url: ${SITEMON_TEST_SURELY_UNSET}\n",
        "postgres.url: environment variable `SITEMON_TEST_SURELY_UNSET` is not set",
    ),
    (
        "postgres url scheme",
        "postgres:\n  url: mysql://db/x\n",
        "postgres.url: expected a postgres:// or postgresql:// url",
    ),
    (
        "zero pool size",
        "postgres:\n  url: postgres://db/x\n  max_connections: 0\n",
        "postgres.max_connections: 0 is out of range 1..=1000",
    ),
    ("kafka without brokers", "kafka:\n  topic: t\n", "kafka.bootstrap_servers: missing"),
    (
        "bad topic name",
        "kafka:\n  bootstrap_servers: h:9092\n  topic: 'bad topic!'\n",
        "kafka.topic: `bad topic!` is not a valid Kafka topic name",
    ),
    (
        "kafka properties not a mapping",
        "kafka:\n  bootstrap_servers: h:9092\n  properties: [a]\n",
        "kafka.properties: expected a mapping",
    ),
    (
        "unknown kafka.tls key",
        "kafka:\n  bootstrap_servers: h:9093\n  tls:\n    ca_flie: ca.pem\n",
        "bad.yaml:7:5: kafka.tls.ca_flie: unknown field; did you mean `ca_file`?",
    ),
    (
        "client certificate without its key",
        "kafka:\n  bootstrap_servers: h:9093\n  tls:\n    cert_file: client.pem\n",
        "kafka.tls.key_file: missing: `cert_file` needs the key it was issued for",
    ),
    (
        "key password without a key",
        "kafka:\n  bootstrap_servers: h:9093\n  tls:\n    key_password: k3y\n",
        "bad.yaml:7:5: kafka.tls.key_password: there is no `key_file` for this password to open",
    ),
    (
        "unknown SASL mechanism",
        "kafka:\n  bootstrap_servers: h:9093\n  sasl: {mechanism: GSSAPI, username: u, password: p}\n",
        "kafka.sasl.mechanism: `GSSAPI` is not supported; expected one of: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
    ),
    (
        "SASL without a password",
        "kafka:\n  bootstrap_servers: h:9093\n  sasl:\n    mechanism: SCRAM-SHA-512\n    username: u\n",
        "kafka.sasl.password: missing",
    ),
    (
        "quorum past the regions tracked per site",
        "sites:\n  - {name: a, url: 'http://x/', quorum: 65}\n",
        "bad.yaml:2:33: sites[0].quorum: 65 is out of range 1..=64: at most 64 regions are tracked per site",
    ),
    ("zero batch size", "consumer:\n  batch_size: 0\n", "consumer.batch_size: 0 is out of range 1..=100000"),
    (
        "batch wait gibberish",
        "consumer:\n  batch_wait: fast\n",
        "consumer.batch_wait: `fast` is not a duration",
    ),
    ("empty region", "region: ''\n", "region: must not be empty"),
    ("zero retention", "retention: 0s\n", "retention: must be greater than zero"),
    ("defaults of the wrong type", "defaults: 5\n", "defaults: expected a mapping, found a number"),
    ("unknown sqlite key", "sqlite:\n  file: x.db\n", "sqlite.file: unknown field; expected one of: path"),
    ("invalid YAML", "sites: [\n", "not valid YAML"),
    ("empty file", "", "the file is empty"),
    ("top level is a list", "- a\n- b\n", "expected a mapping, found a list"),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_malformed_config_is_located_and_exits_64_with_nothing_started() {
    assert!(CASES.len() >= 30);
    let mut failures = Vec::new();
    for (what, text, expected) in CASES {
        let dir = tempfile::tempdir().unwrap();
        // Each case keeps one valid site where it has none of its own, so the only problem is its own.
        let text = if text.contains("sites") || text.is_empty() || text.starts_with('-') {
            text.to_string()
        } else {
            format!("{SITE}{text}")
        };
        std::fs::write(dir.path().join("bad.yaml"), &text).unwrap();
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"))
                .args(["run", "-c", "bad.yaml"])
                .current_dir(dir.path())
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: still running after 10 s"))
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(64) || !err.contains(expected) {
            failures.push(format!("{what}: wanted exit 64 and `{expected}`; got {}", describe(&out)));
        }
        if dir.path().join("sitemon.db").exists() {
            failures.push(format!("{what}: the SQLite store was created before validation failed"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

#[tokio::test]
async fn unreadable_file_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"))
        .args(["config", "check", "-c"])
        .arg(dir.path()) // a directory: exists but cannot be read as a file
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read file"), "{}", describe(&out));
}

/// Credentials in a url are refused without being echoed, wherever the url comes from.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_a_url_are_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("password", "url: 'http://probe:hunter2@127.0.0.1:1/'", "hunter2"),
        ("token as user", "url: 'https://ghp_s3cr3tt0ken@127.0.0.1:1/'", "ghp_s3cr3tt0ken"),
        ("unparseable", "url: 'http://probe:hunter2@127.0.0.1:99999/'", "hunter2"),
        ("password with # and /", "url: 'http://probe:pa#ss/w0rd@127.0.0.1:x/'", "w0rd"),
        ("from the environment", "url: '${SITEMON_TEST_SITE_URL}'", "env-s3cret"),
    ];
    let env = [("SITEMON_TEST_SITE_URL", "http://probe:env-s3cret@127.0.0.1:1/")];
    for (what, url, secret) in cases {
        let cfg = write(dir.path(), "creds.yaml", &format!("sites:\n  - {{name: a, {url}}}\n"));
        let out = sitemon(&["config", "check", "-c", &cfg], &env, Duration::from_secs(10)).await;
        let shown = describe(&out);
        assert_eq!(out.status.code(), Some(64), "{what}: {shown}");
        assert!(shown.contains("creds.yaml:2:15: sites[0].url: "), "{what}: not located: {shown}");
        assert!(!shown.contains(secret), "{what}: the secret was echoed: {shown}");
    }
    // `sitemon check URL` validates its URL the same way: refused before any connection (a
    // connection to port 1 would be refused, and exit 2).
    let out = sitemon(&["check", "http://probe:hunter2@127.0.0.1:1/"], &[], Duration::from_secs(10)).await;
    let shown = describe(&out);
    assert_eq!(out.status.code(), Some(64), "{shown}");
    assert!(
        shown.contains("URL: the url holds credentials") && shown.contains("e.g. Authorization"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// Values the producer would publish but the consumer does not admit are config problems, so a
/// site's own records are never dead letters: a url past 16 KiB, a region label with a NUL or past
/// 512 bytes, a pattern past 16 KiB.
#[tokio::test(flavor = "multi_thread")]
async fn values_the_consumer_would_not_admit_are_config_problems() {
    let long_url = format!("sites:\n  - name: a\n    url: 'http://x/{}'\n", "p".repeat(20_000));
    let long_pattern = format!("{SITE}    pattern: '{}'\n", "a".repeat(20_000));
    let cases = [
        ("url past 16 KiB", long_url, "sites[0].url: the url is 20009 bytes long"),
        (
            "NUL in the region",
            format!("region: \"a\\0b\"\n{SITE}"),
            "region: a region label holds at most 512 bytes and no NUL",
        ),
        (
            "region past 512 bytes",
            format!("region: {}\n{SITE}", "r".repeat(600)),
            "region: a region label holds at most",
        ),
        ("pattern past 16 KiB", long_pattern, "sites[0].pattern: a pattern holds at most 16384 bytes"),
    ];
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "bad.yaml", text);
        let out = sitemon(&["config", "check", "-c", &path], &[], Duration::from_secs(10)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(64) || !err.contains(expected) {
            failures.push(format!("{what}: wanted exit 64 and `{expected}`; got {}", describe(&out)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
