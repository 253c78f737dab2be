//! [`ReportSource`] written once for both stores: one site's daily tallies, incidents and
//! history pages over a window, each a query of the store's [`ReportSql`] with bind parameters;
//! a store says only how it binds a time and a check id.

/// A store's three report queries. Each takes the site (`1`), the window's start and end (`2`,
/// `3`); `results` also the key after which the page starts (`4`, `5`: both null for the first)
/// and the page size (`6`).
pub struct ReportSql {
    pub daily: &'static str,
    pub incidents: &'static str,
    pub results: &'static str,
}

/// Implements `ReportSource` for `$store` (with a `pool`) over its `ReportSql`, its error
/// `classify`, and how it binds a time (`$time`) and a check id (`$id`).
macro_rules! report_source {
    ($store:ty, $sql:expr, $classify:path, $time:expr, $id:expr) => {
        impl $crate::ports::ReportSource for $store {
            async fn daily(
                &self,
                site_id: &str,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::domain::DayTally>, $crate::ports::StoreError> {
                let rows: Vec<$crate::store::day_row::DayRow> = sqlx::query_as($sql.daily)
                    .bind(site_id)
                    .bind($time(from))
                    .bind($time(to))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($classify)?;
                Ok(rows.into_iter().map($crate::domain::DayTally::from).collect())
            }

            async fn incidents(
                &self,
                site_id: &str,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<$crate::domain::Incident>, $crate::ports::StoreError> {
                let rows: Vec<$crate::store::incident_row::IncidentRow> = sqlx::query_as($sql.incidents)
                    .bind(site_id)
                    .bind($time(from))
                    .bind($time(to))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($classify)?;
                Ok(rows.into_iter().map($crate::domain::Incident::from).collect())
            }

            async fn results(
                &self,
                site_id: &str,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
                after: Option<$crate::ports::ResultKey>,
                limit: u32,
            ) -> Result<Vec<$crate::domain::CheckResult>, $crate::ports::StoreError> {
                let rows: Vec<$crate::store::result_row::ResultRow> = sqlx::query_as($sql.results)
                    .bind(site_id)
                    .bind($time(from))
                    .bind($time(to))
                    .bind(after.map(|k| $time(k.scheduled_at)))
                    .bind(after.map(|k| $id(k.check_id)))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($classify)?;
                Ok(rows.into_iter().map($crate::domain::CheckResult::from).collect())
            }
        }
    };
}
pub(super) use report_source;
