//! [`Unreachable`]: why PostgreSQL cannot be used, said once and in words a person can act on —
//! the server by host and port (never the user or password), the cause, and what to check.

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// How long one attempt to reach the server may take before it counts as timed out.
pub const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// PostgreSQL could not be reached or refused sitemon.
#[derive(Debug, thiserror::Error)]
#[error("cannot use PostgreSQL at {place}: {cause}; {hint}")]
pub struct Unreachable {
    /// `host:port/database` (or the socket directory).
    pub place: String,
    pub cause: String,
    pub hint: &'static str,
}

/// `sitemon migrate`'s (and each service's start) failure: the server, or a migration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    #[error("applying the database migrations")]
    Migrations(#[source] sqlx::migrate::MigrateError),
    #[error("creating the history partition for {day}")]
    Partition {
        day: chrono::NaiveDate,
        #[source]
        source: crate::ports::StoreError,
    },
}

/// What went wrong with the first connection, sorted into the causes a person tells apart.
pub(super) fn unreachable(opts: &PgConnectOptions, e: Option<&sqlx::Error>) -> Unreachable {
    let place =
        format!("{}:{}/{}", opts.get_host(), opts.get_port(), opts.get_database().unwrap_or("postgres"));
    let check_server = "check that it is running and that `postgres.url` names its host and port";
    let (cause, hint) = match e {
        None | Some(sqlx::Error::PoolTimedOut) => {
            (format!("no answer within {} s", REACH_TIMEOUT.as_secs()), check_server)
        }
        Some(sqlx::Error::Io(io)) => {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => ("connection refused".to_owned(), check_server),
                TimedOut => ("connection timed out".to_owned(), check_server),
                ConnectionReset | ConnectionAborted | UnexpectedEof => {
                    ("the server closed the connection".to_owned(), check_server)
                }
                _ if io.to_string().contains("lookup") => {
                    ("host name not found".to_owned(), "check the host name in `postgres.url`")
                }
                _ => (io.to_string(), check_server),
            }
        }
        Some(sqlx::Error::Tls(t)) => (
            format!("TLS failed: {t}"),
            "check `sslmode` and `sslrootcert` in `postgres.url` against the server's certificate",
        ),
        Some(sqlx::Error::Database(db)) => match db.code().as_deref() {
            Some("28P01" | "28000") => (
                "authentication failed".to_owned(),
                "check the user and password in `postgres.url` (or the variable or file it is read from)",
            ),
            Some("3D000") => (
                "the database does not exist".to_owned(),
                "create it, or fix the database name in `postgres.url`",
            ),
            Some("53300") => {
                ("too many connections".to_owned(), "lower `postgres.max_connections` or raise the server's")
            }
            Some("57P03") => {
                ("the server is starting up or shutting down".to_owned(), "try again in a moment")
            }
            _ => (db.message().to_owned(), check_server),
        },
        Some(other) => (other.to_string(), check_server),
    };
    Unreachable { place, cause, hint }
}

/// Whether waiting may heal it: a server not listening yet, restarting, starting up or full.
fn passing(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// Opens and closes one connection, trying again for up to [`REACH_TIMEOUT`] while the cause
/// may pass (a server still starting, as in a compose start); a refusal that will not pass
/// (authentication, a missing database, TLS) is returned at once.
pub(super) async fn reach(opts: &PgConnectOptions) -> Result<(), Unreachable> {
    let deadline = tokio::time::Instant::now() + REACH_TIMEOUT;
    let mut waits = crate::retry::backoff();
    loop {
        let e = match tokio::time::timeout_at(deadline, opts.connect()).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(e)) => e,
            Err(_) => return Err(unreachable(opts, None)),
        };
        let pause = waits.next().unwrap_or(REACH_TIMEOUT);
        if !passing(&e) || tokio::time::Instant::now() + pause >= deadline {
            return Err(unreachable(opts, Some(&e)));
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> PgConnectOptions {
        "postgres://alice:s3cret-pw@db.example:6543/metrics".parse().unwrap()
    }

    #[test]
    fn a_refused_connection_names_the_server_not_the_credentials() {
        let e = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let text = unreachable(&opts(), Some(&e)).to_string();
        assert_eq!(
            text,
            "cannot use PostgreSQL at db.example:6543/metrics: connection refused; check that it is running \
             and that `postgres.url` names its host and port"
        );
        assert!(!text.contains("s3cret") && !text.contains("alice"), "{text}");
    }

    #[test]
    fn a_timeout_says_how_long_it_waited() {
        let text = unreachable(&opts(), None).to_string();
        assert!(text.contains("no answer within 10 s"), "{text}");
    }
}
