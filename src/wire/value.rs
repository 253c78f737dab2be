//! Mapping from apache-avro values of schemas/check_result.avsc to the domain [`CheckResult`]:
//! how records written with an older schema version, resolved into the current one, are read.

use apache_avro::types::Value;

use super::fields::Fields;

use crate::domain::{CheckResult, CheckStatus, FailureKind};

/// The domain result for a record already resolved to the current schema.
pub fn from_value(v: Value) -> Result<CheckResult, String> {
    let Value::Record(fields) = v else {
        return Err("expected a record".into());
    };
    let mut f = Fields(fields);
    let check_id = f.string("check_id")?;
    let status = f.symbol("status")?.unwrap_or_default();
    let status_code = f.opt_long("status_code")?;
    Ok(CheckResult {
        check_id: check_id.parse().map_err(|e| format!("field `check_id`: {e}"))?,
        site_id: f.string("site_id")?,
        url: f.string("url")?,
        region: f.string("region")?,
        scheduled_at: f.time("scheduled_at")?,
        started_at: f.time("started_at")?,
        status: CheckStatus::parse(&status).ok_or_else(|| format!("unknown status `{status}`"))?,
        failure_kind: f.symbol("failure_kind")?.map(|s| FailureKind::parse(&s).unwrap_or(FailureKind::Other)),
        error: f.opt_string("error")?,
        status_code: status_code
            .map(|c| u16::try_from(c).map_err(|_| format!("field `status_code`: {c} is out of range")))
            .transpose()?,
        http_version: f.opt_string("http_version")?,
        remote_addr: f.opt_string("remote_addr")?,
        dns_us: f.opt_long("dns_us")?,
        connect_us: f.opt_long("connect_us")?,
        tls_us: f.opt_long("tls_us")?,
        ttfb_us: f.opt_long("ttfb_us")?,
        total_us: f.opt_long("total_us")?,
        body_bytes: f.opt_long("body_bytes")?,
        pattern: f.opt_string("pattern")?,
        pattern_matched: match f.take("pattern_matched")? {
            Value::Null => None,
            Value::Boolean(b) => Some(b),
            other => {
                return Err(format!("field `pattern_matched`: expected a boolean, found {other:?}"));
            }
        },
        tls_not_after: f.opt_time("tls_not_after")?,
        producer_version: if f.has("producer_version") { f.opt_string("producer_version")? } else { None },
        redirects: if f.has("redirects") {
            f.opt_long("redirects")?
                .map(|n| u32::try_from(n).map_err(|_| format!("field `redirects`: {n} is out of range")))
                .transpose()?
        } else {
            None
        },
        interval_ms: f.opt_count("interval_ms")?,
        down_after: f.opt_count("down_after")?,
        up_after: f.opt_count("up_after")?,
        quorum: f.opt_count("quorum")?,
        degraded_above_ms: f.opt_count("degraded_above_ms")?,
        cert_warn_days: f.opt_count("cert_warn_days")?,
        missed_since: if f.has("missed_since") { f.opt_time("missed_since")? } else { None },
        missed_slots: f.opt_count("missed_slots")?,
    })
}
