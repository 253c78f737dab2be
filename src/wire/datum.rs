//! The hot path of the wire: Avro binary encoding and decoding of the *current* schema's datum
//! straight between bytes and [`CheckResult`], without apache-avro's generic value tree (which
//! allocates a name per field). Older schema versions still go through apache-avro, which also
//! serves as the oracle in this module's tests.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{CheckResult, CheckStatus, FailureKind};

/// Appends the datum of `r` (schemas/check_result.avsc, field order as declared).
pub fn write(r: &CheckResult, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    let mut id = Uuid::encode_buffer();
    w.str(r.check_id.hyphenated().encode_lower(&mut id));
    w.str(&r.site_id);
    w.str(&r.url);
    w.str(&r.region);
    w.long(r.scheduled_at.timestamp_micros());
    w.long(r.started_at.timestamp_micros());
    w.long(index_of(&CheckStatus::ALL, r.status));
    w.opt(r.failure_kind, |w, k| w.long(index_of(&FailureKind::ALL, k)));
    w.opt(r.error.as_deref(), Writer::str);
    w.opt(r.status_code, |w, c| w.long(i64::from(c)));
    w.opt(r.http_version.as_deref(), Writer::str);
    w.opt(r.remote_addr.as_deref(), Writer::str);
    for n in [r.dns_us, r.connect_us, r.tls_us, r.ttfb_us, r.total_us, r.body_bytes] {
        w.opt(n, Writer::long);
    }
    w.opt(r.pattern.as_deref(), Writer::str);
    w.opt(r.pattern_matched, |w, b| w.0.push(u8::from(b)));
    w.opt(r.tls_not_after, |w, t| w.long(t.timestamp_micros()));
    w.opt(r.producer_version.as_deref(), Writer::str);
    w.opt(r.redirects, |w, n| w.long(i64::from(n)));
    w.opt(r.interval_ms, |w, n| w.long(i64::from(n)));
    for n in [r.down_after, r.up_after, r.quorum] {
        w.opt(n, |w, n| w.long(i64::from(n)));
    }
    w.opt(r.degraded_above_ms, |w, n| w.long(i64::from(n)));
    w.opt(r.cert_warn_days, |w, n| w.long(i64::from(n)));
    w.opt(r.missed_since, |w, t| w.long(t.timestamp_micros()));
    w.opt(r.missed_slots, |w, n| w.long(i64::from(n)));
}

/// Reads one datum of the current schema from the front of `bytes`; returns it and what is left.
pub fn read(bytes: &[u8]) -> Result<(CheckResult, &[u8]), String> {
    let mut r = Reader { rest: bytes };
    let check_id = r.str("check_id")?;
    let check_id = Uuid::try_parse(check_id).map_err(|e| format!("field `check_id`: {e}"))?;
    let result = CheckResult {
        check_id,
        site_id: r.str("site_id")?.to_owned(),
        url: r.str("url")?.to_owned(),
        region: r.str("region")?.to_owned(),
        scheduled_at: r.time("scheduled_at")?,
        started_at: r.time("started_at")?,
        status: r.symbol("status", &CheckStatus::ALL)?,
        failure_kind: r.opt("failure_kind", |r| r.symbol("failure_kind", &FailureKind::ALL))?,
        error: r.opt("error", |r| r.string("error"))?,
        status_code: r.opt("status_code", |r| {
            let c = r.int("status_code")?;
            u16::try_from(c).map_err(|_| format!("field `status_code`: {c} is out of range"))
        })?,
        http_version: r.opt("http_version", |r| r.string("http_version"))?,
        remote_addr: r.opt("remote_addr", |r| r.string("remote_addr"))?,
        dns_us: r.opt("dns_us", |r| r.long("dns_us"))?,
        connect_us: r.opt("connect_us", |r| r.long("connect_us"))?,
        tls_us: r.opt("tls_us", |r| r.long("tls_us"))?,
        ttfb_us: r.opt("ttfb_us", |r| r.long("ttfb_us"))?,
        total_us: r.opt("total_us", |r| r.long("total_us"))?,
        body_bytes: r.opt("body_bytes", |r| r.long("body_bytes"))?,
        pattern: r.opt("pattern", |r| r.string("pattern"))?,
        pattern_matched: r.opt("pattern_matched", |r| match r.byte("pattern_matched")? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("field `pattern_matched`: {b} is not a boolean")),
        })?,
        tls_not_after: r.opt("tls_not_after", |r| r.time("tls_not_after"))?,
        producer_version: r.opt("producer_version", |r| r.string("producer_version"))?,
        redirects: r.opt("redirects", |r| {
            let n = r.int("redirects")?;
            u32::try_from(n).map_err(|_| format!("field `redirects`: {n} is out of range"))
        })?,
        interval_ms: r.opt("interval_ms", |r| unsigned("interval_ms", r.long("interval_ms")?))?,
        down_after: r.opt("down_after", |r| unsigned("down_after", r.int("down_after")?.into()))?,
        up_after: r.opt("up_after", |r| unsigned("up_after", r.int("up_after")?.into()))?,
        quorum: r.opt("quorum", |r| unsigned("quorum", r.int("quorum")?.into()))?,
        degraded_above_ms: r
            .opt("degraded_above_ms", |r| unsigned("degraded_above_ms", r.long("degraded_above_ms")?))?,
        cert_warn_days: r
            .opt("cert_warn_days", |r| unsigned("cert_warn_days", r.int("cert_warn_days")?.into()))?,
        missed_since: r.opt("missed_since", |r| r.time("missed_since"))?,
        missed_slots: r.opt("missed_slots", |r| unsigned("missed_slots", r.int("missed_slots")?.into()))?,
    };
    Ok((result, r.rest))
}

/// A count or duration that cannot be negative.
pub(super) fn unsigned(field: &str, n: i64) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("field `{field}`: {n} is out of range"))
}

fn index_of<T: Copy + PartialEq>(all: &[T], v: T) -> i64 {
    all.iter().position(|x| *x == v).expect("variant listed in ALL") as i64
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    /// Zig-zag varint, as Avro encodes both int and long.
    fn long(&mut self, n: i64) {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        while z >= 0x80 {
            self.0.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.0.push(z as u8);
    }

    fn str(&mut self, s: &str) {
        self.long(s.len() as i64);
        self.0.extend_from_slice(s.as_bytes());
    }

    /// A `["null", T]` union.
    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.long(0),
            Some(v) => {
                self.long(1);
                f(self, v);
            }
        }
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self, field: &str) -> Result<u8, String> {
        let (&b, rest) =
            self.rest.split_first().ok_or_else(|| format!("field `{field}`: the datum ends early"))?;
        self.rest = rest;
        Ok(b)
    }

    fn long(&mut self, field: &str) -> Result<i64, String> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte(field)?;
            if shift == 63 && b > 1 {
                break;
            }
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(format!("field `{field}`: varint overflows a long"))
    }

    fn int(&mut self, field: &str) -> Result<i32, String> {
        let n = self.long(field)?;
        i32::try_from(n).map_err(|_| format!("field `{field}`: {n} overflows an int"))
    }

    fn str(&mut self, field: &str) -> Result<&'a str, String> {
        let len = self.long(field)?;
        let len = usize::try_from(len).map_err(|_| format!("field `{field}`: negative length {len}"))?;
        if len > self.rest.len() {
            return Err(format!("field `{field}`: the datum ends early"));
        }
        let (s, rest) = self.rest.split_at(len);
        self.rest = rest;
        std::str::from_utf8(s).map_err(|e| format!("field `{field}`: {e}"))
    }

    fn string(&mut self, field: &str) -> Result<String, String> {
        self.str(field).map(str::to_owned)
    }

    fn time(&mut self, field: &str) -> Result<DateTime<Utc>, String> {
        let us = self.long(field)?;
        DateTime::from_timestamp_micros(us).ok_or_else(|| format!("field `{field}`: {us} µs is out of range"))
    }

    fn symbol<T: Copy>(&mut self, field: &str, all: &[T]) -> Result<T, String> {
        let i = self.int(field)?;
        usize::try_from(i)
            .ok()
            .and_then(|i| all.get(i).copied())
            .ok_or_else(|| format!("field `{field}`: no symbol at index {i}"))
    }

    /// A `["null", T]` union.
    fn opt<T>(
        &mut self,
        field: &str,
        f: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.long(field)? {
            0 => Ok(None),
            1 => f(self).map(Some),
            i => Err(format!("field `{field}`: no union branch at index {i}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::framing::Strict;
    use crate::wire::schema::{CURRENT, reader_for};
    use crate::wire::value::from_value;
    use apache_avro::types::Value;
    use apache_avro::writer::datum::GenericDatumWriter;
    use chrono::TimeZone;

    // apache-avro's generic writer, the oracle for `write`.

    fn opt(v: Option<Value>) -> Value {
        match v {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(v) => Value::Union(1, Box::new(v)),
        }
    }

    fn opt_str(s: &Option<String>) -> Value {
        opt(s.clone().map(Value::String))
    }

    fn opt_long(n: Option<i64>) -> Value {
        opt(n.map(Value::Long))
    }

    fn enum_value<T: Copy + PartialEq>(all: &[T], v: T, name: fn(T) -> &'static str) -> Value {
        let i = all.iter().position(|x| *x == v).expect("variant listed in ALL");
        Value::Enum(i as u32, name(v).to_owned())
    }

    /// The Avro record for a result (field order as in the schema).
    pub fn to_value(r: &CheckResult) -> Value {
        Value::Record(vec![
            ("check_id".into(), Value::Uuid(r.check_id)),
            ("site_id".into(), Value::String(r.site_id.clone())),
            ("url".into(), Value::String(r.url.clone())),
            ("region".into(), Value::String(r.region.clone())),
            ("scheduled_at".into(), Value::TimestampMicros(r.scheduled_at.timestamp_micros())),
            ("started_at".into(), Value::TimestampMicros(r.started_at.timestamp_micros())),
            ("status".into(), enum_value(&CheckStatus::ALL, r.status, CheckStatus::as_str)),
            (
                "failure_kind".into(),
                opt(r.failure_kind.map(|k| enum_value(&FailureKind::ALL, k, FailureKind::as_str))),
            ),
            ("error".into(), opt_str(&r.error)),
            ("status_code".into(), opt(r.status_code.map(|c| Value::Int(i32::from(c))))),
            ("http_version".into(), opt_str(&r.http_version)),
            ("remote_addr".into(), opt_str(&r.remote_addr)),
            ("dns_us".into(), opt_long(r.dns_us)),
            ("connect_us".into(), opt_long(r.connect_us)),
            ("tls_us".into(), opt_long(r.tls_us)),
            ("ttfb_us".into(), opt_long(r.ttfb_us)),
            ("total_us".into(), opt_long(r.total_us)),
            ("body_bytes".into(), opt_long(r.body_bytes)),
            ("pattern".into(), opt_str(&r.pattern)),
            ("pattern_matched".into(), opt(r.pattern_matched.map(Value::Boolean))),
            (
                "tls_not_after".into(),
                opt(r.tls_not_after.map(|t| Value::TimestampMicros(t.timestamp_micros()))),
            ),
            ("producer_version".into(), opt_str(&r.producer_version)),
            ("redirects".into(), opt(r.redirects.map(|n| Value::Int(n as i32)))),
            ("interval_ms".into(), opt(r.interval_ms.map(|n| Value::Long(i64::from(n))))),
            ("down_after".into(), opt(r.down_after.map(|n| Value::Int(n as i32)))),
            ("up_after".into(), opt(r.up_after.map(|n| Value::Int(n as i32)))),
            ("quorum".into(), opt(r.quorum.map(|n| Value::Int(n as i32)))),
            ("degraded_above_ms".into(), opt(r.degraded_above_ms.map(|n| Value::Long(i64::from(n))))),
            ("cert_warn_days".into(), opt(r.cert_warn_days.map(|n| Value::Int(n as i32)))),
            (
                "missed_since".into(),
                opt(r.missed_since.map(|t| Value::TimestampMicros(t.timestamp_micros()))),
            ),
            ("missed_slots".into(), opt(r.missed_slots.map(|n| Value::Int(n as i32)))),
        ])
    }

    fn samples() -> Vec<CheckResult> {
        let t = Utc.timestamp_micros(1_763_800_000_000_001).unwrap();
        let mut full = CheckResult::new("site-ä", "https://a.test/", "eu", t, t, CheckStatus::Success);
        full.status_code = Some(65535);
        full.http_version = Some("HTTP/1.1".into());
        full.remote_addr = Some("[::1]:443".into());
        (full.dns_us, full.connect_us, full.tls_us) = (Some(0), Some(-1), Some(i64::MAX));
        (full.ttfb_us, full.total_us, full.body_bytes) = (Some(i64::MIN), Some(63), Some(64));
        full.pattern = Some(String::new());
        full.pattern_matched = Some(false);
        full.tls_not_after = Some(Utc.timestamp_micros(-5).unwrap());
        full.producer_version = Some("0.1.0".into());
        full.redirects = Some(64);
        full.interval_ms = Some(u32::MAX);
        (full.down_after, full.up_after, full.quorum) = (Some(3), Some(1), Some(2));
        (full.degraded_above_ms, full.cert_warn_days) = (Some(u32::MAX), Some(0));
        (full.missed_since, full.missed_slots) = (Some(Utc.timestamp_micros(-7).unwrap()), Some(59));
        let mut failed = CheckResult::new("s", "http://x/", "", t, t, CheckStatus::Success);
        failed.fail(FailureKind::RedirectLimit, "x".repeat(300));
        let missed = CheckResult::new("m", "http://x/", "r", t, t, CheckStatus::Missed);
        vec![full, failed, missed]
    }

    /// The whole input must be one datum.
    fn whole(bytes: &[u8]) -> Result<CheckResult, String> {
        match read(bytes)? {
            (r, []) => Ok(r),
            (_, rest) => Err(format!("{} trailing bytes", rest.len())),
        }
    }

    fn generic_decode(datum: &[u8]) -> Result<CheckResult, ()> {
        let reader = reader_for(&CURRENT.fingerprint).unwrap();
        let mut strict = Strict { rest: datum, short: false };
        let v = reader.read_value(&mut strict).map_err(drop)?;
        if strict.short || !strict.rest.is_empty() {
            return Err(());
        }
        from_value(v).map_err(drop)
    }

    #[test]
    fn writes_the_same_bytes_as_apache_avro() {
        for r in samples() {
            let mut fast = Vec::new();
            write(&r, &mut fast);
            let writer = GenericDatumWriter::builder(&CURRENT.schema).build().unwrap();
            assert_eq!(fast, writer.write_value_to_vec(to_value(&r)).unwrap(), "{r:?}");
            assert_eq!(whole(&fast).unwrap(), r);
        }
    }

    #[test]
    fn agrees_with_apache_avro_on_damaged_datums() {
        // Every truncation of each sample is refused, and every single-byte change is read
        // exactly as apache-avro (behind framing's strict reader) reads it, or refused where it
        // refuses.
        let mut compared = 0;
        for r in samples() {
            let mut good = Vec::new();
            write(&r, &mut good);
            for cut in 0..good.len() {
                assert!(whole(&good[..cut]).is_err(), "cut at {cut} of {r:?}");
            }
            for i in 0..good.len() {
                for b in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, good[i] ^ 0x01] {
                    let mut bad = good.clone();
                    bad[i] = b;
                    let (fast, generic) = (whole(&bad), generic_decode(&bad));
                    // apache-avro drops the bits a 10-byte varint carries past 64; this refuses it.
                    if fast.as_ref().is_err_and(|e| e.contains("overflows a long")) {
                        continue;
                    }
                    assert_eq!(fast.map_err(drop), generic, "byte {i} = {b:#x} was {:#x}", good[i]);
                    compared += usize::from(generic.is_ok());
                }
            }
        }
        assert!(compared > 100, "only {compared} damaged datums decoded");
    }

    #[test]
    fn refuses_out_of_range_values_with_the_field_name() {
        let mut bytes = Vec::new();
        let mut w = Writer(&mut bytes);
        w.str("not-a-uuid");
        assert!(whole(&bytes).unwrap_err().contains("check_id"));
        let r = &samples()[2];
        let mut good = Vec::new();
        write(r, &mut good);
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(read(&trailing).unwrap().1, [0]);
        let ten_byte_overflow = [0xffu8; 10];
        assert!(Reader { rest: &ten_byte_overflow }.long("n").is_err());
    }
}
