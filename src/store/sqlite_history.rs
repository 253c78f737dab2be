//! SQLite's history and latest-status primitives of the batch transaction: rows inserted one
//! by one (duplicates skipped), dead letters, and the latest status folded from the new rows
//! (recomputed from the history for a site whose stored status is not older than all of them).

use std::collections::HashSet;

use super::batch::{Fresh, HistoryTx};
use super::latest::LatestRow;
use super::sqlite_tx::{SqliteTx, classify, us};
use crate::domain::CheckResult;
use crate::ports::{DeadLetter, StoreError};

const INSERT_HISTORY: &str = "INSERT INTO check_results (check_id, site_id, url, region, scheduled_at, \
    started_at, status, failure_kind, error, status_code, http_version, remote_addr, dns_us, connect_us, \
    tls_us, ttfb_us, total_us, body_bytes, pattern, pattern_matched, tls_not_after, missed_since, \
    missed_slots) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (check_id, scheduled_at) DO NOTHING";

/// Parameters: the row, then `whole` (does the batch's run continue the stored state?) and
/// `oldest` (the site's oldest new result: a stored status at or after it, or one that passed
/// over a result (`next_at`) the ceiling `?16` now reaches, is not continued but recomputed, so
/// the statement then changes nothing).
const UPSERT_STATUS: &str = "INSERT INTO site_status AS s (site_id, region, check_id, url, scheduled_at, \
    started_at, status, failure_kind, error, status_code, total_us, consecutive_failures, status_since, \
    interval_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?17) \
    ON CONFLICT (site_id, region) DO UPDATE SET \
      check_id = excluded.check_id, url = excluded.url, scheduled_at = excluded.scheduled_at, \
      started_at = excluded.started_at, status = excluded.status, failure_kind = excluded.failure_kind, \
      error = excluded.error, status_code = excluded.status_code, total_us = excluded.total_us, \
      interval_ms = coalesce(excluded.interval_ms, s.interval_ms), \
      consecutive_failures = CASE WHEN excluded.status = 'SUCCESS' THEN 0 \
        WHEN s.status <> 'SUCCESS' AND ?14 THEN s.consecutive_failures + excluded.consecutive_failures \
        ELSE excluded.consecutive_failures END, \
      status_since = CASE WHEN (s.status = 'SUCCESS') = (excluded.status = 'SUCCESS') AND ?14 \
        THEN s.status_since ELSE excluded.status_since END \
    WHERE s.scheduled_at < ?15 AND (s.next_at IS NULL OR s.next_at > ?16)";

/// The latest status of one site recomputed from its history (see the PostgreSQL store): the
/// newest non-MISSED result dated no later than the ceiling `?3` (if any), the run in its state since the
/// newest result in the other one, and the oldest result passed over. SQLite has one writer at
/// a time, so the transaction already holds the site.
const RECOMPUTE_STATUS: &str = "WITH n AS (       SELECT * FROM check_results WHERE site_id = ?1 AND region = ?2 AND status <> 'MISSED'       AND (?3 IS NULL OR scheduled_at <= ?3) ORDER BY scheduled_at DESC, check_id DESC LIMIT 1),     x AS (SELECT min(c.scheduled_at) AS at FROM check_results c, n       WHERE c.site_id = ?1 AND c.region = ?2 AND c.status <> 'MISSED' AND c.scheduled_at > n.scheduled_at),     p AS (SELECT max(c.scheduled_at) AS at FROM check_results c, n       WHERE c.site_id = ?1 AND c.region = ?2 AND c.status <> 'MISSED'         AND (c.status = 'SUCCESS') <> (n.status = 'SUCCESS') AND c.scheduled_at < n.scheduled_at),     r AS (SELECT count(*) AS len, min(c.scheduled_at) AS since FROM check_results c, n, p       WHERE c.site_id = ?1 AND c.region = ?2 AND c.status <> 'MISSED'         AND c.scheduled_at > coalesce(p.at, -9223372036854775808) AND c.scheduled_at <= n.scheduled_at)     INSERT INTO site_status (site_id, region, check_id, url, scheduled_at, started_at, status,       failure_kind, error, status_code, total_us, interval_ms, consecutive_failures, status_since, next_at)     SELECT n.site_id, n.region, n.check_id, n.url, n.scheduled_at, n.started_at, n.status,       n.failure_kind, n.error, n.status_code, n.total_us, ?4,       CASE WHEN n.status = 'SUCCESS' THEN 0 ELSE r.len END, r.since, x.at FROM n, r, x WHERE true     ON CONFLICT (site_id, region) DO UPDATE SET       check_id = excluded.check_id, url = excluded.url, scheduled_at = excluded.scheduled_at,       started_at = excluded.started_at, status = excluded.status, failure_kind = excluded.failure_kind,       error = excluded.error, status_code = excluded.status_code, total_us = excluded.total_us,       interval_ms = coalesce(excluded.interval_ms, site_status.interval_ms),       consecutive_failures = excluded.consecutive_failures, status_since = excluded.status_since,       next_at = excluded.next_at";

const INSERT_DEAD: &str = "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, record_key, \
    payload, error, received_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING";

impl HistoryTx for SqliteTx<'_> {
    async fn append(&mut self, results: &[&CheckResult], dead: &[DeadLetter]) -> Result<Fresh, StoreError> {
        let mut new = HashSet::with_capacity(results.len());
        for &r in results {
            let inserted = sqlx::query(INSERT_HISTORY)
                .bind(r.check_id.to_string())
                .bind(&r.site_id)
                .bind(&r.url)
                .bind(&r.region)
                .bind(us(r.scheduled_at))
                .bind(us(r.started_at))
                .bind(r.status.as_str())
                .bind(r.failure_kind.map(|k| k.as_str()))
                .bind(&r.error)
                .bind(r.status_code.map(i32::from))
                .bind(&r.http_version)
                .bind(&r.remote_addr)
                .bind(r.dns_us)
                .bind(r.connect_us)
                .bind(r.tls_us)
                .bind(r.ttfb_us)
                .bind(r.total_us)
                .bind(r.body_bytes)
                .bind(&r.pattern)
                .bind(r.pattern_matched)
                .bind(r.tls_not_after.map(us))
                .bind(r.missed_since.map(us))
                .bind(r.missed_slots)
                .execute(&mut *self.0)
                .await
                .map_err(classify)?;
            if inserted.rows_affected() > 0 {
                new.insert((r.scheduled_at, r.check_id));
            }
        }
        let now = us(chrono::Utc::now());
        for d in dead {
            sqlx::query(INSERT_DEAD)
                .bind(&d.position.topic)
                .bind(d.position.partition)
                .bind(d.position.offset)
                .bind(&d.key)
                .bind(&d.payload)
                .bind(&d.error)
                .bind(now)
                .execute(&mut *self.0)
                .await
                .map_err(classify)?;
        }
        Ok(Fresh::Only(new))
    }

    async fn fold_latest(&mut self, rows: &[LatestRow<'_>]) -> Result<(), StoreError> {
        for l in rows {
            let r = l.result;
            // A result from the future followed by older ones is passed over: recomputed.
            let continued = l.shown()
                && sqlx::query(UPSERT_STATUS)
                    .bind(&r.site_id)
                    .bind(&r.region)
                    .bind(r.check_id.to_string())
                    .bind(&r.url)
                    .bind(us(r.scheduled_at))
                    .bind(us(r.started_at))
                    .bind(r.status.as_str())
                    .bind(r.failure_kind.map(|k| k.as_str()))
                    .bind(&r.error)
                    .bind(r.status_code.map(i32::from))
                    .bind(r.total_us)
                    .bind(if r.is_up() { 0 } else { l.run_len })
                    .bind(us(l.run_start))
                    .bind(l.whole)
                    .bind(us(l.oldest))
                    .bind(l.ceiling.map(us))
                    .bind(r.interval_ms.map(i64::from))
                    .execute(&mut *self.0)
                    .await
                    .map_err(classify)?
                    .rows_affected()
                    > 0;
            if !continued {
                sqlx::query(RECOMPUTE_STATUS)
                    .bind(&r.site_id)
                    .bind(&r.region)
                    .bind(l.ceiling.map(us))
                    .bind(r.interval_ms.map(i64::from))
                    .execute(&mut *self.0)
                    .await
                    .map_err(classify)?;
            }
        }
        Ok(())
    }
}
