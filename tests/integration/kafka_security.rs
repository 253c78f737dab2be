//! sitemon through the broker's secured listeners, configured only with `kafka.tls` and
//! `kafka.sasl`: a client certificate on the SSL listener (as with Aiven), SCRAM-SHA-512 on the
//! SASL_SSL listener; a wrong password fails in bounded time without being echoed.

use std::time::{Duration, Instant};

use crate::support::secure_kafka::SecureKafka;
use crate::support::{self, describe, sitemon, sites, write};

const LIMIT: Duration = Duration::from_secs(120);

fn config(addr: std::net::SocketAddr, topic: &str, kafka: &str) -> String {
    format!(
        "region: secure\nsites:\n  - {{name: ok, url: 'http://{addr}/ok'}}\n  - {{name: error, url: 'http://{addr}/error'}}\nkafka:\n  bootstrap_servers: ${{SITEMON_TEST_BOOTSTRAP}}\n  topic: {topic}\n{kafka}postgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nconsumer:\n  batch_wait: 200ms\n"
    )
}

/// Producer `--once` then consumer `--exit-when-idle` with `kafka` (the security part of the
/// config) against `bootstrap`; both results must be stored.
async fn round_trip(bootstrap: &str, kafka: &str, env: &[(&str, &str)]) {
    let addr = sites::start().await;
    let db = support::fresh_database().await;
    let topic = support::unique("sitemon-secure");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "secure.yaml", &config(addr, &topic, kafka));
    let mut env = env.to_vec();
    env.extend([("SITEMON_TEST_BOOTSTRAP", bootstrap), ("SITEMON_TEST_DATABASE_URL", db.as_str())]);

    let out = sitemon(&["config", "check", "-c", &cfg], &env, LIMIT).await;
    assert!(out.status.success(), "config check: {}", describe(&out));
    let out = sitemon(&["producer", "--once", "-c", &cfg], &env, LIMIT).await;
    assert!(out.status.success(), "producer: {}", describe(&out));
    let out = sitemon(&["consumer", "-c", &cfg, "--exit-when-idle", "3s"], &env, LIMIT).await;
    assert!(out.status.success(), "consumer: {}", describe(&out));

    let mut conn = support::connect(&db).await;
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT site_id, region FROM check_results ORDER BY site_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let want = [("error", "secure"), ("ok", "secure")].map(|(s, r)| (s.to_owned(), r.to_owned()));
    assert_eq!(stored, want, "both results went through the secured listener");
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_and_consumer_work_through_the_ssl_listener_with_a_client_certificate() {
    let k = SecureKafka::from_env();
    let tls = format!(
        "  tls:\n    ca_file: {}\n    cert_file: {}\n    key_file: {}\n    key_password: ${{SITEMON_TEST_KEY_PASSWORD}}\n",
        k.ca_file, k.client_cert, k.client_key
    );
    round_trip(&k.ssl_bootstrap, &tls, &[("SITEMON_TEST_KEY_PASSWORD", &k.client_key_password)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_and_consumer_work_through_the_sasl_ssl_listener_with_scram_sha_512() {
    let k = SecureKafka::from_env();
    let sasl = format!(
        "  tls:\n    ca_file: {}\n  sasl:\n    mechanism: SCRAM-SHA-512\n    username: {}\n    password: ${{SITEMON_TEST_SASL_PASSWORD}}\n",
        k.ca_file, k.sasl_username
    );
    round_trip(&k.sasl_bootstrap, &sasl, &[("SITEMON_TEST_SASL_PASSWORD", &k.sasl_password)]).await;
}

/// The SSL listener requires a client certificate: without one nothing is delivered, so the
/// round trips above do prove that the configured certificate was presented.
#[tokio::test(flavor = "multi_thread")]
async fn the_ssl_listener_refuses_a_client_without_a_certificate() {
    let k = SecureKafka::from_env();
    let tls = format!("  tls:\n    ca_file: {}\n", k.ca_file);
    let out = failing_producer(&k.ssl_bootstrap, &tls, &[], "3s").await;
    let shown = describe(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    // The broker's TLS alert for a missing client certificate, not some other failure.
    assert!(shown.contains("alert bad certificate"), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_sasl_password_fails_in_bounded_time_without_being_echoed() {
    let k = SecureKafka::from_env();
    let wrong = "wr0ng-scram-s3cret";
    let sasl = format!(
        "  tls:\n    ca_file: {}\n  sasl:\n    mechanism: SCRAM-SHA-512\n    username: {}\n    password: ${{SITEMON_TEST_SASL_PASSWORD}}\n",
        k.ca_file, k.sasl_username
    );
    let started = Instant::now();
    let out =
        failing_producer(&k.sasl_bootstrap, &sasl, &[("SITEMON_TEST_SASL_PASSWORD", wrong)], "60s").await;
    let shown = describe(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    // A refusal does not heal by waiting: the round ends at once, not after its 60 s of grace
    // (nor librdkafka's 30 s message timeout).
    assert!(started.elapsed() < Duration::from_secs(25), "took {:?}: {shown}", started.elapsed());
    assert!(!shown.contains(wrong), "the password was echoed: {shown}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let broker = format!("sasl_ssl://{}/bootstrap: SASL authentication error", k.sasl_bootstrap);
    assert!(
        last.starts_with(&format!("error: the Kafka broker refused sitemon's credentials ({broker}"))
            && last.ends_with(
                "check the user name and password of `kafka.sasl` (or the client certificate of `kafka.tls`) \
                 and the broker's ACLs; 2 results were not published"
            ),
        "{shown}"
    );
    // librdkafka reports the failure as a log line and again as an error event (per thread):
    // each failure is logged once.
    let logged = stderr.lines().filter(|l| l.contains("librdkafka") && l.contains("Authentication failed"));
    let (lines, attempts) = (logged.clone().count(), logged.filter(|l| l.contains("FAIL")).count());
    assert!(lines >= 1 && lines == attempts, "{lines} lines for {attempts} failed attempts: {shown}");
}

/// `sitemon producer --once --grace <grace>` with `kafka` that the broker refuses; it must exit
/// by itself: librdkafka keeps retrying the connection, and the round's unacknowledged results
/// are given up when the grace period after the round ends (or at once when the broker refused
/// the credentials).
async fn failing_producer(
    bootstrap: &str,
    kafka: &str,
    env: &[(&str, &str)],
    grace: &str,
) -> std::process::Output {
    let addr = sites::start().await;
    let dir = tempfile::tempdir().unwrap();
    let topic = support::unique("sitemon-refused");
    let cfg = write(dir.path(), "refused.yaml", &config(addr, &topic, kafka));
    let mut env = env.to_vec();
    env.extend([
        ("SITEMON_TEST_BOOTSTRAP", bootstrap),
        ("SITEMON_TEST_DATABASE_URL", "postgres://u@127.0.0.1:1/x"),
    ]);
    sitemon(&["producer", "--once", "--grace", grace, "-c", &cfg], &env, Duration::from_secs(90)).await
}
