//! [`SqliteDeliveries`]: `sitemon run`'s alert deliveries in its SQLite file (`notify_deliveries`),
//! the same contract as PostgreSQL's: recorded once by id, leased one at a time under a token, in
//! order per incident and provider. SQLite has one writer at a time, so a claim is one statement.
//! Silences (`sitemon silence`) live in its `notify_silences`, as in PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use uuid::Uuid;

use super::SqliteStore;
use super::sqlite_tx::classify;
use crate::notify::{Claimed, LastDelivery, Outcome, Outgoing, Pattern, Silence};
use crate::ports::{DeliveryStore, NewSilence, StoreError};

const RECORD: &str = "INSERT INTO notify_deliveries (delivery_id, route, provider, subject, site_id, kind, body, \
    state, silenced_by, due_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING";

const CLAIM: &str = "UPDATE notify_deliveries SET leased_until = ?3 + ?4, lease_token = ?5, attempts = attempts + 1 \
    WHERE seq IN (SELECT d.seq FROM notify_deliveries d \
      WHERE d.provider = ?1 AND d.state = 'PENDING' AND d.due_at <= ?3 \
        AND (d.leased_until IS NULL OR d.leased_until < ?3) \
        AND NOT EXISTS (SELECT 1 FROM notify_deliveries e WHERE e.provider = d.provider \
          AND e.subject = d.subject AND e.state = 'PENDING' AND e.seq < d.seq) \
      ORDER BY d.seq LIMIT ?2) \
    RETURNING seq, delivery_id, provider, body, attempts, lease_token";

const FINISH: &str = "UPDATE notify_deliveries SET state = ?2, answer = ?3, leased_until = NULL, lease_token = NULL, \
    due_at = ?4, sent_at = CASE WHEN ?2 = 'SENT' THEN ?5 END \
    WHERE seq = ?1 AND state = 'PENDING' AND lease_token = ?6";

pub struct SqliteDeliveries {
    pool: SqlitePool,
}

impl SqliteStore {
    /// `sitemon run`'s alert deliveries, in this store's file.
    pub fn deliveries(&self) -> SqliteDeliveries {
        SqliteDeliveries { pool: self.pool.clone() }
    }
}

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn ids(list: &[Uuid]) -> String {
    serde_json::to_string(&list.iter().map(Uuid::to_string).collect::<Vec<_>>()).expect("strings serialize")
}

impl DeliveryStore for SqliteDeliveries {
    async fn record(&self, planned: &[Outgoing]) -> Result<(), StoreError> {
        let now = us(Utc::now());
        let mut tx = self.pool.begin().await.map_err(classify)?;
        for o in planned {
            sqlx::query(RECORD)
                .bind(o.delivery_id.to_string())
                .bind(&o.route)
                .bind(&o.provider)
                .bind(o.subject.to_string())
                .bind(&o.site_id)
                .bind(o.kind)
                .bind(o.body.to_string())
                .bind(if o.silenced.is_some() { "SILENCED" } else { "PENDING" })
                .bind(&o.silenced)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }

    async fn claim(&self, provider: &str, max: usize, lease: Duration) -> Result<Vec<Claimed>, StoreError> {
        let rows: Vec<(i64, String, String, String, i32, String)> = sqlx::query_as(CLAIM)
            .bind(provider)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(us(Utc::now()))
            .bind(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
            .bind(Uuid::new_v4().to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|(seq, id, provider, body, attempts, lease)| {
                let bad = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Rejected(e);
                Ok(Claimed {
                    seq,
                    delivery_id: id.parse().map_err(|e: uuid::Error| bad(e.into()))?,
                    provider,
                    body: serde_json::from_str(&body).map_err(|e| bad(e.into()))?,
                    attempts,
                    lease: lease.parse().map_err(|e: uuid::Error| bad(e.into()))?,
                })
            })
            .collect()
    }

    async fn finish(&self, d: &Claimed, outcome: &Outcome) -> Result<(), StoreError> {
        let now = Utc::now();
        let due = match outcome {
            Outcome::Retry { after, .. } => {
                now + chrono::TimeDelta::from_std(*after).unwrap_or(chrono::TimeDelta::MAX)
            }
            _ => now,
        };
        sqlx::query(FINISH)
            .bind(d.seq)
            .bind(outcome.state())
            .bind(crate::domain::storable_text(outcome.answer(), 2048))
            .bind(us(due))
            .bind(us(now))
            .bind(d.lease.to_string())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn unfinished(&self, providers: &[String]) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notify_deliveries WHERE state = 'PENDING' \
             AND provider IN (SELECT value FROM json_each(?1))",
        )
        .bind(serde_json::to_string(providers).expect("strings serialize"))
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(n.unsigned_abs())
    }

    async fn still_open(&self, incidents: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        let open: Vec<String> = sqlx::query_scalar(
            "SELECT incident_id FROM incidents WHERE ended_at IS NULL \
             AND incident_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(ids(incidents))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(open.iter().filter_map(|s| s.parse().ok()).collect())
    }

    async fn told(&self, incidents: &[Uuid]) -> Result<Vec<(String, Uuid)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT route, subject FROM notify_deliveries \
             WHERE subject IN (SELECT value FROM json_each(?1)) AND kind = 'incident.opened' \
             AND state <> 'SILENCED'",
        )
        .bind(ids(incidents))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows.into_iter().filter_map(|(route, s)| Some((route, s.parse().ok()?))).collect())
    }

    async fn last_deliveries(&self, subjects: &[Uuid]) -> Result<Vec<LastDelivery>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT subject, provider, state, coalesce(sent_at, created_at) FROM notify_deliveries d \
             WHERE subject IN (SELECT value FROM json_each(?1)) \
               AND seq = (SELECT max(seq) FROM notify_deliveries e WHERE e.subject = d.subject)",
        )
        .bind(ids(subjects))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .filter_map(|(subject, provider, state, at)| {
                Some(LastDelivery {
                    subject: subject.parse().ok()?,
                    provider,
                    state,
                    at: DateTime::from_timestamp_micros(at)?,
                })
            })
            .collect())
    }

    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows: Vec<(String, String, i64, i64, String)> = sqlx::query_as(
            "SELECT silence_id, sites, starts_at, ends_at, reason FROM notify_silences \
             WHERE ends_at > ?1 ORDER BY starts_at, silence_id",
        )
        .bind(us(now))
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        let time = |t: i64| DateTime::from_timestamp_micros(t).unwrap_or_default();
        Ok(rows
            .into_iter()
            .filter_map(|(id, sites, from, until, reason)| {
                // A row that no longer reads is left out.
                let sites: Vec<String> = serde_json::from_str(&sites).ok()?;
                Silence::stored(id.parse().ok()?, &sites, (time(from), time(until)), reason)
            })
            .collect())
    }

    async fn add_silence(&self, s: &NewSilence<'_>) -> Result<(), StoreError> {
        let sites: Vec<&str> = s.sites.iter().map(Pattern::as_str).collect();
        sqlx::query(
            "INSERT INTO notify_silences (silence_id, sites, starts_at, ends_at, reason, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(s.id.to_string())
        .bind(serde_json::to_string(&sites).expect("strings serialize"))
        .bind(us(s.window.0))
        .bind(us(s.window.1))
        .bind(s.reason)
        .bind(us(Utc::now()))
        .execute(&self.pool)
        .await
        .map_err(classify)?;
        Ok(())
    }

    async fn remove_silence(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM notify_silences WHERE silence_id = ?1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }
}
