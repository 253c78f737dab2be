//! Incident events for the outbox tests: samples, and `incident_events` rows written with SQL
//! (the tests do not depend on the consumer deriving them).

use chrono::{DateTime, TimeZone, Utc};
use sitemon::domain::{EventKind, FailureKind, Incident, IncidentEvent};
use sqlx::PgConnection;
use uuid::Uuid;

pub fn at(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

/// `n` events of distinct sites: openings and closings, per region and site-wide, with and
/// without failure kind and error, text that needs escaping.
pub fn samples(prefix: &str, n: usize) -> Vec<IncidentEvent> {
    (0..n as i64)
        .map(|i| {
            let site = format!("{prefix}-site-{i}-zürich");
            let region = (i % 2 == 0).then(|| "eu-west".to_owned());
            let started_at = at(i * 10);
            let closed = i % 3 == 1;
            let incident = Incident {
                incident_id: Incident::id_for(&site, region.as_deref(), started_at),
                kind: sitemon::domain::IncidentKind::Down,
                site_id: site,
                region: region.clone(),
                url: format!("https://例え.test/{i}?q=\"1\""),
                started_at,
                confirmed_at: at(i * 10 + 20),
                ended_at: closed.then(|| at(i * 10 + 90)),
                end_reason: None,
                regions: match &region {
                    Some(r) => vec![r.clone()],
                    None => vec!["ap".into(), "eu-west".into()],
                },
                failure_kind: (i % 4 != 3).then_some(FailureKind::ALL[i as usize % FailureKind::ALL.len()]),
                error: (i % 4 != 3).then(|| format!("refused\n\t#{i}")),
                failed_checks: 3 + i,
            };
            let kind = if closed { EventKind::Closed } else { EventKind::Opened };
            IncidentEvent::new(kind, at(i * 10 + if closed { 100 } else { 20 }), &incident)
        })
        .collect()
}

pub async fn insert_pg(conn: &mut PgConnection, events: &[IncidentEvent]) {
    for e in events {
        let i = &e.incident;
        sqlx::query(
            "INSERT INTO incident_events (event_id, kind, at, incident_id, site_id, region, url, started_at, \
             confirmed_at, ended_at, regions, failure_kind, error, failed_checks) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(e.event_id)
        .bind(e.kind.as_str())
        .bind(e.at)
        .bind(i.incident_id)
        .bind(&i.site_id)
        .bind(&i.region)
        .bind(&i.url)
        .bind(i.started_at)
        .bind(i.confirmed_at)
        .bind(i.ended_at)
        .bind(&i.regions)
        .bind(i.failure_kind.map(FailureKind::as_str))
        .bind(&i.error)
        .bind(i.failed_checks)
        .execute(&mut *conn)
        .await
        .expect("insert an outbox row");
    }
}

pub async fn unpublished_pg(conn: &mut PgConnection) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT event_id FROM incident_events WHERE published_at IS NULL ORDER BY seq")
        .fetch_all(conn)
        .await
        .unwrap()
}
