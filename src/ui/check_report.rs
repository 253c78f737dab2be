//! The report of a one-off `sitemon check URL`: a readable phase breakdown, or JSON.

use std::fmt::Write;

use crate::domain::CheckResult;

fn ms(us: Option<i64>) -> String {
    us.map_or("-".to_owned(), |us| format!("{:.1} ms", us as f64 / 1e3))
}

pub fn check_text(r: &CheckResult) -> String {
    let mut out = String::new();
    let state = if r.is_up() { "UP" } else { "DOWN" };
    let _ = writeln!(out, "{state}  {}", r.url);
    if let (Some(kind), Some(err)) = (r.failure_kind, &r.error) {
        let _ = writeln!(out, "  failure      {}: {err}", kind.as_str().to_lowercase());
    }
    if let Some(code) = r.status_code {
        let version = r.http_version.as_deref().unwrap_or("");
        let _ = writeln!(out, "  status       {code} ({version})");
    }
    if let Some(addr) = &r.remote_addr {
        let _ = writeln!(out, "  remote       {addr}");
    }
    for (name, v) in [
        ("dns", r.dns_us),
        ("connect", r.connect_us),
        ("tls", r.tls_us),
        ("first byte", r.ttfb_us),
        ("total", r.total_us),
    ] {
        let _ = writeln!(out, "  {name:<12} {}", ms(v));
    }
    if let Some(n) = r.body_bytes {
        let _ = writeln!(out, "  body         {n} bytes");
    }
    if let (Some(p), Some(m)) = (&r.pattern, r.pattern_matched) {
        let _ = writeln!(out, "  pattern      {p:?} {}", if m { "found" } else { "not found" });
    }
    if let Some(t) = r.tls_not_after {
        let _ = writeln!(out, "  cert expires {}", t.format("%Y-%m-%d %H:%M UTC"));
    }
    out
}

pub fn check_json(r: &CheckResult) -> String {
    serde_json::to_string_pretty(&result_value(r)).expect("json values serialize")
}

/// Every stored field of a result, named as its column.
pub(super) fn result_value(r: &CheckResult) -> serde_json::Value {
    serde_json::json!({
        "check_id": r.check_id.to_string(),
        "site_id": r.site_id,
        "url": r.url,
        "region": r.region,
        "scheduled_at": r.scheduled_at.to_rfc3339(),
        "started_at": r.started_at.to_rfc3339(),
        "status": r.status.as_str(),
        "failure_kind": r.failure_kind.map(|k| k.as_str()),
        "error": r.error,
        "status_code": r.status_code,
        "http_version": r.http_version,
        "remote_addr": r.remote_addr,
        "dns_us": r.dns_us,
        "connect_us": r.connect_us,
        "tls_us": r.tls_us,
        "ttfb_us": r.ttfb_us,
        "total_us": r.total_us,
        "body_bytes": r.body_bytes,
        "pattern": r.pattern,
        "pattern_matched": r.pattern_matched,
        "tls_not_after": r.tls_not_after.map(|t| t.to_rfc3339()),
        "missed_since": r.missed_since.map(|t| t.to_rfc3339()),
        "missed_slots": r.missed_slots,
    })
}
