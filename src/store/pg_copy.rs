//! PostgreSQL binary `COPY` encoding of history rows: the fast path for appending a batch to
//! `check_results` (no SQL parsing of values, no parameter arrays to unpack).

use chrono::{DateTime, Utc};

use crate::domain::CheckResult;

/// The statement the encoded rows are sent with; the columns in [`encode`]'s order.
pub const COPY_HISTORY: &str = "COPY check_results (
    check_id, site_id, url, region, scheduled_at, started_at, status, failure_kind, error,
    status_code, http_version, remote_addr, dns_us, connect_us, tls_us, ttfb_us, total_us,
    body_bytes, pattern, pattern_matched, tls_not_after, missed_since, missed_slots)
    FROM STDIN (FORMAT binary)";

const COLUMNS: i16 = 23;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// The whole COPY stream (header, one tuple per result, trailer) for [`COPY_HISTORY`].
pub fn encode(results: &[&CheckResult]) -> Vec<u8> {
    let mut b = Binary(Vec::with_capacity(64 + results.len() * 256));
    b.0.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    b.0.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    b.0.extend_from_slice(&0i32.to_be_bytes()); // no header extension
    for r in results {
        b.0.extend_from_slice(&COLUMNS.to_be_bytes());
        b.field(r.check_id.as_bytes());
        b.text(Some(&r.site_id));
        b.text(Some(&r.url));
        b.text(Some(&r.region));
        b.time(Some(r.scheduled_at));
        b.time(Some(r.started_at));
        b.text(Some(r.status.as_str()));
        b.text(r.failure_kind.map(|k| k.as_str()));
        b.text(r.error.as_deref());
        b.opt(r.status_code.map(|c| i32::from(c).to_be_bytes()));
        b.text(r.http_version.as_deref());
        b.text(r.remote_addr.as_deref());
        for v in [r.dns_us, r.connect_us, r.tls_us, r.ttfb_us, r.total_us, r.body_bytes] {
            b.opt(v.map(i64::to_be_bytes));
        }
        b.text(r.pattern.as_deref());
        b.opt(r.pattern_matched.map(|m| [u8::from(m)]));
        b.time(r.tls_not_after);
        b.time(r.missed_since);
        b.opt(r.missed_slots.map(|n| i32::try_from(n).unwrap_or(i32::MAX).to_be_bytes()));
    }
    b.0.extend_from_slice(&(-1i16).to_be_bytes());
    b.0
}

struct Binary(Vec<u8>);

impl Binary {
    fn field(&mut self, bytes: &[u8]) {
        let len = i32::try_from(bytes.len()).expect("a field is far below 2 GiB");
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
    }

    fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn opt<const N: usize>(&mut self, v: Option<[u8; N]>) {
        match v {
            Some(bytes) => self.field(&bytes),
            None => self.null(),
        }
    }

    fn text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.field(s.as_bytes()),
            None => self.null(),
        }
    }

    fn time(&mut self, t: Option<DateTime<Utc>>) {
        self.opt(t.map(|t| (t.timestamp_micros() - PG_EPOCH_US).to_be_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckStatus;

    #[test]
    fn frames_header_tuples_and_trailer() {
        let t = DateTime::from_timestamp(946_684_800, 0).unwrap();
        let r = CheckResult::new("s", "http://x/", "r", t, t, CheckStatus::Success);
        let out = encode(&[&r, &r]);
        assert!(out.starts_with(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        assert!(out.ends_with(&[0xff, 0xff]));
        // First tuple: column count, then the 16-byte uuid.
        assert_eq!(&out[19..21], &23i16.to_be_bytes());
        assert_eq!(&out[21..25], &16i32.to_be_bytes());
        // scheduled_at at PostgreSQL's epoch encodes as zero microseconds.
        let epoch = [&8i32.to_be_bytes()[..], &[0u8; 8]].concat();
        assert!(out.windows(12).any(|w| w == epoch.as_slice()));
    }
}
