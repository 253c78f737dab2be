//! The errors a person meets first, pinned word for word: each names the thing (a flag, or a
//! server by host and port, never a credential), the cause and what to do, once.

use std::time::{Duration, Instant};

use crate::support::{self, describe, sitemon, write};

const LIMIT: Duration = Duration::from_secs(60);

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn check_blames_the_argument_not_a_line_of_a_document_nobody_wrote() {
    let out = sitemon(&["check", "notaurl"], &[], LIMIT).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    assert_eq!(
        stderr(&out),
        "error: 1 problem on the command line\n  URL: `notaurl` is not a valid url: relative URL without a base\n"
    );
    // `--timeout` is also the check's interval: its problem is said once, under its own flag.
    let out = sitemon(&["check", "http://127.0.0.1:9/", "--timeout", "5q"], &[], LIMIT).await;
    assert_eq!(out.status.code(), Some(64), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: 1 problem on the command line\n  --timeout: `5q` is not a duration"),
        "{err}"
    );
}

fn config(dir: &std::path::Path) -> String {
    let text = format!(
        "kafka:\n  bootstrap_servers: {}\n  topic: edge\npostgres:\n  url: ${{SITEMON_TEST_DATABASE_URL}}\nsites: []\n",
        support::kafka_bootstrap()
    );
    write(dir, "edge.yaml", &text)
}

/// `migrate`, `consumer`, `status` and `report` against a server that refuses the connection:
/// one line naming host, port and database, the cause once, no password, within seconds.
#[tokio::test]
async fn an_unreachable_database_is_named_with_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let url = "postgres://sitemon:pg-s3cret-pw@127.0.0.1:1/metrics";
    let env = [("SITEMON_TEST_DATABASE_URL", url)];
    let want = "error: cannot use PostgreSQL at 127.0.0.1:1/metrics: connection refused; check that it is \
                running and that `postgres.url` names its host and port\n";
    for args in [
        &["migrate", "-c", &cfg][..],
        &["consumer", "-c", &cfg, "--exit-when-idle", "1s"],
        &["status", "-c", &cfg],
        &["report", "-c", &cfg, "--site", "a"],
    ] {
        let started = Instant::now();
        let out = sitemon(args, &env, LIMIT).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert!(started.elapsed() < Duration::from_secs(15), "{args:?} took {:?}", started.elapsed());
        let err = stderr(&out);
        assert!(err.ends_with(want), "{args:?}: {err}");
        assert_eq!(err.matches("refused").count(), 1, "{args:?}: the cause once: {err}");
        assert!(!err.contains("pg-s3cret-pw"), "{args:?}: the password was shown: {err}");
    }
}

#[tokio::test]
async fn a_missing_database_and_an_unknown_user_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let base = support::fresh_database().await;
    let (server, _) = base.rsplit_once('/').unwrap();
    let missing = format!("{server}/sitemon_no_such_database");
    let out = sitemon(&["migrate", "-c", &cfg], &[("SITEMON_TEST_DATABASE_URL", &missing)], LIMIT).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "/sitemon_no_such_database: the database does not exist; create it, or fix the database name"
        ),
        "{err}"
    );
    // The test server trusts local users; one it does not know fails authentication.
    let stranger = base.replacen("postgres://postgres@", "postgres://sitemon_no_such_user:pw-s3cret@", 1);
    assert_ne!(stranger, base, "the test URL's user is `postgres`: {base}");
    let out = sitemon(&["status", "-c", &cfg], &[("SITEMON_TEST_DATABASE_URL", &stranger)], LIMIT).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains(": authentication failed; check the user and password in `postgres.url`"), "{err}");
    assert!(!err.contains("pw-s3cret") && !err.contains("sitemon_no_such_user"), "{err}");
}
