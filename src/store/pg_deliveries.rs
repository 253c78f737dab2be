//! [`PgDeliveries`]: `sitemon notify`'s deliveries in PostgreSQL (`notify_deliveries`). Planned
//! deliveries are inserted once by id; senders lease due ones with `FOR UPDATE SKIP LOCKED`, so
//! instances sharing the table never send the same delivery at the same time, and a lease that
//! ran out (its sender died mid-request) makes the delivery due again, under the same id.

use std::time::Duration;

use chrono::{DateTime, Utc};

use sqlx::PgPool;
use uuid::Uuid;

use super::PgStore;
use super::pg_tx::classify;
use crate::notify::{Claimed, LastDelivery, Outcome, Outgoing, Pattern, Silence};
use crate::ports::{DeliveryStore, NewSilence, StoreError};

const RECORD: &str = r#"
INSERT INTO notify_deliveries (delivery_id, route, provider, subject, site_id, kind, body, state, silenced_by)
SELECT d, r, p, s, site, k, b::jsonb, CASE WHEN why IS NULL THEN 'PENDING' ELSE 'SILENCED' END, why
FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[])
    AS t(d, r, p, s, site, k, b, why)
ON CONFLICT (delivery_id) DO NOTHING
"#;

/// Due, not leased (or the lease ran out), and the oldest unfinished one of its subject. Each
/// claim gets a token of its own: only its holder's answer is recorded.
const CLAIM: &str = r#"
WITH c AS (
    SELECT d.seq FROM notify_deliveries d
    WHERE d.provider = $1 AND d.state = 'PENDING' AND d.due_at <= now()
      AND (d.leased_until IS NULL OR d.leased_until < now())
      AND NOT EXISTS (
          SELECT 1 FROM notify_deliveries e
          WHERE e.provider = d.provider AND e.subject = d.subject AND e.state = 'PENDING' AND e.seq < d.seq)
    ORDER BY d.seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE notify_deliveries d
SET leased_until = now() + $3 * interval '1 millisecond', lease_token = gen_random_uuid(),
    attempts = d.attempts + 1
FROM c WHERE d.seq = c.seq
RETURNING d.seq, d.delivery_id, d.provider, d.body::text, d.attempts, d.lease_token
"#;

const FINISH: &str = r#"
UPDATE notify_deliveries
SET state = $2, answer = $3, leased_until = NULL, lease_token = NULL,
    due_at = now() + $4 * interval '1 millisecond',
    sent_at = CASE WHEN $2 = 'SENT' THEN now() END
WHERE seq = $1 AND state = 'PENDING' AND lease_token = $5
"#;

/// A `notify_silences` row: id, patterns, start, end, reason.
type SilenceRow = (Uuid, Vec<String>, DateTime<Utc>, DateTime<Utc>, String);

pub struct PgDeliveries {
    pool: PgPool,
}

impl PgStore {
    /// `sitemon notify`'s deliveries, in this store's database.
    pub fn deliveries(&self) -> PgDeliveries {
        PgDeliveries { pool: self.pool.clone() }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl DeliveryStore for PgDeliveries {
    async fn record(&self, planned: &[Outgoing]) -> Result<(), StoreError> {
        if planned.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&Outgoing) -> Option<String>| planned.iter().map(f).collect::<Vec<_>>();
        sqlx::query(RECORD)
            .bind(planned.iter().map(|o| o.delivery_id).collect::<Vec<Uuid>>())
            .bind(col(|o| Some(o.route.clone())))
            .bind(col(|o| Some(o.provider.clone())))
            .bind(planned.iter().map(|o| o.subject).collect::<Vec<Uuid>>())
            .bind(col(|o| o.site_id.clone()))
            .bind(col(|o| Some(o.kind.to_owned())))
            .bind(col(|o| Some(o.body.to_string())))
            .bind(col(|o| o.silenced.clone()))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn claim(&self, provider: &str, max: usize, lease: Duration) -> Result<Vec<Claimed>, StoreError> {
        let rows: Vec<(i64, Uuid, String, String, i32, Uuid)> = sqlx::query_as(CLAIM)
            .bind(provider)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(ms(lease))
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.into_iter()
            .map(|(seq, delivery_id, provider, body, attempts, lease)| {
                let body = serde_json::from_str(&body).map_err(|e| StoreError::Rejected(e.into()))?;
                Ok(Claimed { seq, delivery_id, provider, body, attempts, lease })
            })
            .collect()
    }

    async fn unfinished(&self, providers: &[String]) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notify_deliveries WHERE state = 'PENDING' AND provider = ANY($1)",
        )
        .bind(providers)
        .fetch_one(&self.pool)
        .await
        .map_err(classify)?;
        Ok(n.unsigned_abs())
    }

    async fn still_open(&self, incidents: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        sqlx::query_scalar(
            "SELECT incident_id FROM incidents WHERE incident_id = ANY($1) AND ended_at IS NULL",
        )
        .bind(incidents)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    async fn told(&self, incidents: &[Uuid]) -> Result<Vec<(String, Uuid)>, StoreError> {
        sqlx::query_as(
            "SELECT DISTINCT route, subject FROM notify_deliveries \
             WHERE subject = ANY($1) AND kind = 'incident.opened' AND state <> 'SILENCED'",
        )
        .bind(incidents)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)
    }

    async fn last_deliveries(&self, subjects: &[Uuid]) -> Result<Vec<LastDelivery>, StoreError> {
        let rows: Vec<(Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT DISTINCT ON (subject) subject, provider, state, coalesce(sent_at, created_at) \
             FROM notify_deliveries WHERE subject = ANY($1) ORDER BY subject, seq DESC",
        )
        .bind(subjects)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|(subject, provider, state, at)| LastDelivery { subject, provider, state, at })
            .collect())
    }

    /// Adds a silence (`sitemon silence add`); returns its id.
    async fn add_silence(&self, s: &NewSilence<'_>) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO notify_silences (silence_id, sites, starts_at, ends_at, reason) VALUES ($1, $2, $3, $4, $5)")
            .bind(s.id)
            .bind(s.sites.iter().map(Pattern::as_str).collect::<Vec<_>>())
            .bind(s.window.0)
            .bind(s.window.1)
            .bind(s.reason)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Removes a silence; false if there was none with that id.
    async fn remove_silence(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM notify_silences WHERE silence_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() > 0)
    }

    async fn silences(&self, now: DateTime<Utc>) -> Result<Vec<Silence>, StoreError> {
        let rows: Vec<SilenceRow> = sqlx::query_as(
            "SELECT silence_id, sites, starts_at, ends_at, reason FROM notify_silences \
             WHERE ends_at > $1 ORDER BY starts_at, silence_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(classify)?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, sites, from, until, reason)| Silence::stored(id, &sites, (from, until), reason))
            .collect())
    }

    async fn finish(&self, d: &Claimed, outcome: &Outcome) -> Result<(), StoreError> {
        let after = match outcome {
            Outcome::Retry { after, .. } => *after,
            _ => Duration::ZERO,
        };
        sqlx::query(FINISH)
            .bind(d.seq)
            .bind(outcome.state())
            .bind(crate::domain::storable_text(outcome.answer(), 2048))
            .bind(ms(after))
            .bind(d.lease)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(())
    }
}
