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
    let out = failing_producer(&k.ssl_bootstrap, &format!("  tls:\n    ca_file: {}\n", k.ca_file), &[]).await;
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
    let out = failing_producer(&k.sasl_bootstrap, &sasl, &[("SITEMON_TEST_SASL_PASSWORD", wrong)]).await;
    let shown = describe(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    // Bounded by `--grace` after the round, not by librdkafka's 30 s message timeout.
    assert!(started.elapsed() < Duration::from_secs(45), "took {:?}: {shown}", started.elapsed());
    assert!(shown.contains("Authentication failed"), "no clear authentication error: {shown}");
    assert!(!shown.contains(wrong), "the password was echoed: {shown}");
    assert!(shown.contains("results were not acknowledged"), "{shown}");
}

/// `sitemon producer --once --grace 3s` with `kafka` that the broker refuses; it must exit by
/// itself: librdkafka keeps retrying the connection, and the round's unacknowledged results are
/// given up when the grace period after the round ends.
async fn failing_producer(bootstrap: &str, kafka: &str, env: &[(&str, &str)]) -> std::process::Output {
    let addr = sites::start().await;
    let dir = tempfile::tempdir().unwrap();
    let topic = support::unique("sitemon-refused");
    let cfg = write(dir.path(), "refused.yaml", &config(addr, &topic, kafka));
    let mut env = env.to_vec();
    env.extend([
        ("SITEMON_TEST_BOOTSTRAP", bootstrap),
        ("SITEMON_TEST_DATABASE_URL", "postgres://u@127.0.0.1:1/x"),
    ]);
    sitemon(&["producer", "--once", "--grace", "3s", "-c", &cfg], &env, Duration::from_secs(90)).await
}
