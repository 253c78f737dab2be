//! Test support: the services' addresses, fresh databases and topics, the built binary, local
//! test sites, and polling with a deadline.

pub mod collect;
pub mod outbox;
pub mod raw;
pub mod registry_standin;
pub mod report_data;
pub mod secure_kafka;
pub mod sites;
pub mod tls;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

/// Address of the test broker; the tests fail loudly without it.
pub fn kafka_bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").expect(
        "KAFKA_BOOTSTRAP_SERVERS is not set: run `make test`, or `eval \"$(scripts/services up)\"` first",
    )
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: run `make test`, or `eval \"$(scripts/services up)\"` first")
}

/// A new, empty database on the test server; returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL");
    // (The server's clock, the same for every test process that shares it.)
    let now: i64 = sqlx::query_scalar("SELECT extract(epoch FROM now())::bigint")
        .fetch_one(&mut conn)
        .await
        .expect("read the server's clock");
    let name = format!("sitemon_test_{now}_{}", uuid::Uuid::new_v4().simple());
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT.get_or_init(|| drop_old_databases(&admin, now)).await;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let base = admin.rsplit_once('/').expect("database url has a path").0;
    format!("{base}/{name}")
}

/// The databases earlier test runs left on the shared test PostgreSQL (made more than six hours
/// ago, by their names), dropped once per test process: runs on one machine would otherwise fill
/// its disk. (Names without a time, from older checkouts, are left: one may be in use.)
async fn drop_old_databases(admin: &str, now: i64) {
    let mut conn = PgConnection::connect(admin).await.expect("connect to the test PostgreSQL");
    let old: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database \
         WHERE datname ~ '^sitemon_test_[0-9]+_' AND split_part(datname, '_', 3)::bigint < $1",
    )
    .bind(now - 6 * 3600)
    .fetch_all(&mut conn)
    .await
    .expect("list the test databases");
    for name in old {
        // (Another test process may drop it first.)
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
    }
}

pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect to the test database")
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs the built `sitemon` binary to completion, killing it after `limit`.
pub async fn sitemon(args: &[&str], envs: &[(&str, &str)], limit: Duration) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sitemon"));
    cmd.args(args).kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    match tokio::time::timeout(limit, cmd.output()).await {
        Ok(out) => out.expect("run sitemon"),
        Err(_) => panic!("`sitemon {}` did not finish within {limit:?}", args.join(" ")),
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path.to_string_lossy().into_owned()
}

/// Waits (up to 20 s) until a session of `url`'s database waits for a lock; `None` if none did.
pub async fn wait_for_a_lock_wait(url: &str) -> Option<()> {
    wait_for(Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(&mut connect(url).await)
        .await
        .unwrap();
        (n > 0).then_some(())
    })
    .await
}

/// Polls `probe` until it returns `Some`, or gives `None` after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small seeded generator (xorshift), so that a failing seed can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Stores a batch as the consumer does: a passing failure (a deadlock the database broke between
/// two writers) is retried; a rejection fails the test.
pub async fn store_retrying<S: sitemon::ports::StatusStore>(
    store: &S,
    batch: &[sitemon::domain::CheckResult],
) {
    for _ in 0..20 {
        match store.store(batch, &[]).await {
            Ok(()) => return,
            Err(sitemon::ports::StoreError::Unavailable(_)) => continue,
            Err(e) => panic!("{e:?}"),
        }
    }
    panic!("the batch could not be stored in 20 attempts");
}
