//! [`PgOutbox`]: the `incident_events` outbox in PostgreSQL. One publisher at a time: whoever
//! holds a session-level advisory lock, on a connection of its own (not one of the store's pool,
//! which it would take away from storing), reads and marks the events; the other consumer
//! processes find nothing pending until that session ends (a stop, a crash, a lost connection),
//! when the next one to ask takes the lock over. A transaction-mode pooler (PgBouncer) between
//! sitemon and PostgreSQL does not keep session locks: point `postgres.url` past it.

use sqlx::{ConnectOptions, PgConnection, PgPool};
use tokio::sync::Mutex;

use super::PgStore;
use super::event_row::{EventRow, pending_sql};
use super::pg_incidents::PG;
use super::pg_tx::classify;
use crate::ports::{EventOutbox, PendingEvent, StoreError};

/// The advisory lock key of the outbox's publisher: the 8 ASCII bytes `sitemon.` read big-endian.
/// One database holds one outbox, so one key.
const PUBLISHER_LOCK: i64 = i64::from_be_bytes(*b"sitemon.");

const MARK: &str =
    "UPDATE incident_events SET published_at = now() WHERE seq = ANY($1) AND published_at IS NULL";

const UNPUBLISHED: &str = "SELECT count(*) FROM incident_events WHERE published_at IS NULL";

/// The publisher's own connection, and whether it holds the lock.
struct Session {
    conn: PgConnection,
    locked: bool,
}

pub struct PgOutbox {
    pool: PgPool,
    session: Mutex<Option<Session>>,
}

impl PgStore {
    /// The outbox of this store's database.
    pub fn outbox(&self) -> PgOutbox {
        PgOutbox { pool: self.pool.clone(), session: Mutex::new(None) }
    }
}

impl PgOutbox {
    /// Opens the session if there is none and tries to take the lock; true while it holds it.
    async fn lock(&self, session: &mut Option<Session>) -> Result<bool, sqlx::Error> {
        if session.is_none() {
            let mut conn = self.pool.connect_options().connect().await?;
            // The lock lives as long as the server believes in this session: if this host dies
            // or the network is cut, it must notice within seconds (not the kernel's two hours)
            // so that another consumer takes over.
            sqlx::query(SESSION_KEEPALIVE).execute(&mut conn).await?;
            *session = Some(Session { conn, locked: false });
        }
        let s = session.as_mut().expect("opened above");
        if !s.locked {
            s.locked = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(PUBLISHER_LOCK)
                .fetch_one(&mut s.conn)
                .await?;
            if s.locked {
                tracing::info!("publishing incident events from this process");
            }
        }
        Ok(s.locked)
    }
}

/// Server-side keepalives and a send timeout on the lock's session: a dead holder's session (and
/// lock) is gone in about 25 s.
const SESSION_KEEPALIVE: &str = "SELECT set_config('tcp_keepalives_idle', '10', false), \
    set_config('tcp_keepalives_interval', '5', false), set_config('tcp_keepalives_count', '3', false), \
    set_config('tcp_user_timeout', '20000', false)";

/// Longest a statement on the lock's session may take: past it the session is presumed cut (a
/// half-open socket would otherwise hang for the kernel's retransmission time), dropped, and
/// opened afresh next time.
const SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn bounded<T>(f: impl std::future::Future<Output = Result<T, sqlx::Error>>) -> Result<T, sqlx::Error> {
    tokio::time::timeout(SESSION_TIMEOUT, f).await.unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut))
}

impl EventOutbox for PgOutbox {
    async fn pending(&self, max: usize) -> Result<Vec<PendingEvent>, StoreError> {
        let mut session = self.session.lock().await;
        let rows: Result<Vec<EventRow>, sqlx::Error> = bounded(async {
            if !self.lock(&mut session).await? {
                return Ok(Vec::new());
            }
            let s = session.as_mut().expect("locked above");
            let sql = pending_sql(&PG, "$1");
            sqlx::query_as(&sql).bind(i64::try_from(max).unwrap_or(i64::MAX)).fetch_all(&mut s.conn).await
        })
        .await;
        match rows {
            Ok(rows) => rows.into_iter().map(EventRow::into_pending).collect(),
            Err(e) => {
                // The session may be gone, and the lock with it: start afresh next time.
                *session = None;
                Err(classify(e))
            }
        }
    }

    async fn mark_published(&self, seqs: &[i64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut session = self.session.lock().await;
        let done = bounded(async {
            match session.as_mut() {
                Some(s) => sqlx::query(MARK).bind(seqs).execute(&mut s.conn).await,
                None => sqlx::query(MARK).bind(seqs).execute(&self.pool).await,
            }
        })
        .await;
        if done.is_err() {
            *session = None;
        }
        done.map(drop).map_err(classify)
    }

    async fn unpublished(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(UNPUBLISHED).fetch_one(&self.pool).await.map_err(classify)?;
        Ok(n.max(0) as u64)
    }
}
