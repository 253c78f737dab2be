//! Bad configs: every problem reported at once with its location, exit 64, nothing started.

use std::time::Duration;

use crate::support::{describe, sitemon, write};

#[tokio::test]
async fn three_mistakes_are_all_reported_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "bad.yaml",
        "sites:\n  - name: a\n    url: http://127.0.0.1:1/\n    interval: soon\n  - name: b\n    url: gopher://x/\nkafka:\n  bootstrap_servers: 127.0.0.1:1\n  topik: x\n",
    );
    for command in ["producer", "run", "config check"] {
        let mut args: Vec<&str> = command.split(' ').collect();
        args.extend(["-c", &cfg]);
        let out = sitemon(&args, &[], Duration::from_secs(10)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        for location in ["sites[0].interval", "sites[1].url", "kafka.topik"] {
            assert!(err.contains(location), "`{location}` not reported by {command}:\n{err}");
        }
        assert!(err.contains("3 problems"), "{err}");
    }
    // The commands that check no site do not read the site list: only the rest is theirs.
    for command in ["consumer", "migrate"] {
        let out = sitemon(&[command, "-c", &cfg], &[], Duration::from_secs(10)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
        assert!(err.contains("kafka.topik") && !err.contains("sites["), "{command}:\n{err}");
    }
}

#[tokio::test]
async fn missing_section_and_usage_errors_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "nokafka.yaml", "sites:\n  - {name: a, url: 'http://127.0.0.1:1/'}\n");
    let out = sitemon(&["producer", "-c", &cfg], &[], Duration::from_secs(10)).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka: missing"), "{}", describe(&out));

    let out = sitemon(&["producer", "--no-such-flag"], &[], Duration::from_secs(10)).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));

    let out = sitemon(&["migrate", "-c", "/nonexistent/sitemon.yaml"], &[], Duration::from_secs(10)).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read file"), "{}", describe(&out));
}

/// librdkafka echoes a refused property's value (`sasl.pasword <the password>`): every refused
/// property is a located config problem (exit 64, before anything connects) whose text holds no
/// property value, whichever command meets it.
#[tokio::test]
async fn refused_kafka_properties_exit_64_without_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "kafka.yaml",
        "sites:\n  - {name: a, url: 'http://127.0.0.1:1/'}\nkafka:\n  bootstrap_servers: 127.0.0.1:1\n  properties:\n    security.protocol: SASL_PLAINTEXT\n    sasl.username: probe\n    sasl.pasword: ${SITEMON_TEST_KAFKA_SECRET}\n    linger.ms: l1nger-s3cret\npostgres:\n  url: postgres://u@127.0.0.1:1/db\n",
    );
    let env = [("SITEMON_TEST_KAFKA_SECRET", "hunter2-kafka-s3cret")];
    for command in
        [&["producer", "--once", "-c", &cfg][..], &["consumer", "-c", &cfg], &["config", "check", "-c", &cfg]]
    {
        let out = sitemon(command, &env, Duration::from_secs(10)).await;
        let shown = describe(&out);
        assert_eq!(out.status.code(), Some(64), "{command:?}: {shown}");
        assert!(!shown.contains("s3cret"), "{command:?} echoed a secret: {shown}");
        assert!(shown.contains("2 problems"), "{command:?}: {shown}");
        assert!(shown.contains("kafka.yaml:8:5: kafka.properties.sasl.pasword: "), "{command:?}: {shown}");
        assert!(shown.contains("No such configuration property"), "{command:?}: {shown}");
        assert!(shown.contains("kafka.yaml:9:5: kafka.properties.linger.ms: "), "{command:?}: {shown}");
    }
}

/// `kafka.tls` files that are not there are located config problems for every command that
/// uses Kafka, all at once with any other problem, and no password is echoed.
#[tokio::test]
async fn missing_kafka_tls_files_exit_64_located_without_the_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", "not checked here");
    let cfg = write(
        dir.path(),
        "tls.yaml",
        &format!(
            "sites:\n  - {{name: a, url: 'http://127.0.0.1:1/'}}\nkafka:\n  bootstrap_servers: 127.0.0.1:1\n  tls:\n    ca_file: {ca}\n    cert_file: /nonexistent/client.pem\n    key_file: {dir}\n    key_password: ${{SITEMON_TEST_KEY_PASSWORD}}\n  sasl: {{mechanism: SCRAM-SHA-512, username: u, password: sasl-s3cret}}\npostgres:\n  url: postgres://u@127.0.0.1:1/db\n",
            dir = dir.path().display()
        ),
    );
    let env = [("SITEMON_TEST_KEY_PASSWORD", "k3y-s3cret")];
    for command in
        [&["producer", "--once", "-c", &cfg][..], &["consumer", "-c", &cfg], &["config", "check", "-c", &cfg]]
    {
        let out = sitemon(command, &env, Duration::from_secs(10)).await;
        let shown = describe(&out);
        assert_eq!(out.status.code(), Some(64), "{command:?}: {shown}");
        assert!(!shown.contains("s3cret"), "{command:?} echoed a secret: {shown}");
        assert!(shown.contains("2 problems"), "{command:?}: {shown}");
        assert!(
            shown.contains("tls.yaml:7:5: kafka.tls.cert_file: `/nonexistent/client.pem` cannot be read"),
            "{command:?}: {shown}"
        );
        assert!(
            shown.contains("tls.yaml:8:5: kafka.tls.key_file: ") && shown.contains("is not a file"),
            "{command:?}: {shown}"
        );
    }
}

#[test]
fn example_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/example_config");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let env = |name: &str| {
            (name == "KAFKA_BOOTSTRAP_SERVERS" || name == "DATABASE_URL").then(|| {
                if name == "DATABASE_URL" { "postgres://u@h/db".to_owned() } else { "h:9092".to_owned() }
            })
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = sitemon::config::parse_with(&text, &path, &env, sitemon::config::Sites::All)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!cfg.sites.is_empty(), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 3, "expected the example configs in {dir}");
}

/// Every `tls_ca_file` that cannot be used is reported at once, at its place, by `config check`
/// as by the commands that check sites — before anything is contacted.
#[tokio::test]
async fn every_unusable_ca_file_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write(dir.path(), "not.pem", "hello\n");
    let cfg = write(
        dir.path(),
        "ca.yaml",
        &format!(
            "sites:\n  - {{name: a, url: 'https://127.0.0.1:1/', tls_ca_file: /nonexistent/ca.pem}}\n  - {{name: b, url: 'https://127.0.0.1:1/'}}\n  - {{name: c, url: 'https://127.0.0.1:1/', tls_ca_file: {not_pem}}}\nsqlite: {{path: {}}}\n",
            dir.path().join("never.db").display()
        ),
    );
    for command in [&["config", "check", "-c", &cfg][..], &["run", "-c", &cfg]] {
        let out = sitemon(command, &[], Duration::from_secs(20)).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{command:?}: {}", describe(&out));
        for place in ["ca.yaml:2:44: sites[0].tls_ca_file: ", "ca.yaml:4:44: sites[2].tls_ca_file: "] {
            assert!(err.contains(place), "{command:?} did not report `{place}`:\n{err}");
        }
    }
    assert!(!dir.path().join("never.db").exists());
}
