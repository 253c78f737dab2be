//! Avro single-object encoding (`C3 01`, 8-byte CRC-64-AVRO fingerprint, datum) for check
//! results, and decoding of any built-in schema version into the current one.

use super::datum;
use super::schema::{CURRENT, is_current, reader_for};
use super::value::from_value;
use crate::domain::CheckResult;

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// Why bytes from the feed are not a check result. The message goes into `dead_letters`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty payload")]
    Empty,
    #[error("confluent schema-registry framing (schema id {0}) needs schema_registry configured")]
    RegistryFraming(u32),
    #[error("{0}")]
    RegistrySchema(String),
    #[error("unknown framing: first bytes {0:02x?} are neither Avro single-object nor Confluent")]
    UnknownFraming(Vec<u8>),
    #[error("unknown writer schema fingerprint {0:02x?}")]
    UnknownSchema(Vec<u8>),
    #[error("invalid avro datum: {0}")]
    Datum(String),
    #[error("{0} trailing bytes after the datum")]
    Trailing(usize),
}

/// A reader over the datum that notes when a read asked for more than was left: apache-avro
/// reads a missing trailing union branch as the first branch instead of failing.
pub(super) struct Strict<'a> {
    pub rest: &'a [u8],
    pub short: bool,
}

impl std::io::Read for Strict<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.short = true;
        }
        self.rest.read(buf)
    }
}

/// Encodes a result with the current schema.
pub fn encode(result: &CheckResult) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 128 + result.url.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&CURRENT.fingerprint);
    datum::write(result, &mut out);
    out
}

/// Decodes a single-object-encoded record written with any built-in schema version.
pub fn decode(bytes: &[u8]) -> Result<CheckResult, DecodeError> {
    match bytes {
        [] => Err(DecodeError::Empty),
        [0, a, b, c, d, ..] => Err(DecodeError::RegistryFraming(u32::from_be_bytes([*a, *b, *c, *d]))),
        _ if bytes.len() >= HEADER_LEN && bytes[..2] == MAGIC => {
            let fp = &bytes[2..HEADER_LEN];
            if is_current(fp) {
                return match datum::read(&bytes[HEADER_LEN..]).map_err(DecodeError::Datum)? {
                    (result, []) => Ok(result),
                    (_, rest) => Err(DecodeError::Trailing(rest.len())),
                };
            }
            let reader = reader_for(fp).ok_or_else(|| DecodeError::UnknownSchema(fp.to_vec()))?;
            let mut datum = Strict { rest: &bytes[HEADER_LEN..], short: false };
            let value = reader.read_value(&mut datum).map_err(|e| DecodeError::Datum(e.to_string()))?;
            if datum.short {
                return Err(DecodeError::Datum("the datum ends before its last field".into()));
            }
            if !datum.rest.is_empty() {
                return Err(DecodeError::Trailing(datum.rest.len()));
            }
            from_value(value).map_err(DecodeError::Datum)
        }
        _ => Err(DecodeError::UnknownFraming(bytes[..bytes.len().min(4)].to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CheckStatus, FailureKind};
    use chrono::{TimeZone, Utc};

    fn sample() -> CheckResult {
        let t = Utc.timestamp_micros(1_763_800_000_000_001).unwrap();
        let mut r = CheckResult::new("site-a", "https://a.test/", "eu", t, t, CheckStatus::Success);
        r.status_code = Some(200);
        r.http_version = Some("HTTP/1.1".into());
        r.remote_addr = Some("127.0.0.1:443".into());
        r.dns_us = Some(1);
        r.connect_us = Some(2);
        r.tls_us = Some(3);
        r.ttfb_us = Some(4);
        r.total_us = Some(5);
        r.body_bytes = Some(6);
        r.pattern = Some("ok".into());
        r.pattern_matched = Some(true);
        r.tls_not_after = Some(t);
        r
    }

    #[test]
    fn round_trips_every_field() {
        let r = sample();
        let bytes = encode(&r);
        assert_eq!(&bytes[..2], &MAGIC);
        assert_eq!(decode(&bytes).unwrap(), r);
    }

    #[test]
    fn round_trips_a_failure_with_nulls() {
        let t = Utc.timestamp_micros(1).unwrap();
        let mut r = CheckResult::new("s", "http://x/", "r", t, t, CheckStatus::Success);
        r.fail(FailureKind::Timeout, "timed out after 5s");
        assert_eq!(decode(&encode(&r)).unwrap(), r);
    }

    #[test]
    fn writes_the_specification_fingerprint() {
        // CRC-64-AVRO of schemas/check_result.avsc's Parsing Canonical Form as Apache Avro's
        // Java SchemaNormalization computes it (see wire::schema's VECTORS).
        let bytes = encode(&sample());
        assert_eq!(bytes[..HEADER_LEN], [0xC3, 0x01, 0x85, 0x1c, 0xe3, 0xe8, 0xd8, 0x00, 0x09, 0x93]);
    }

    /// A version-1 record of `r` (whose later fields are none) with v1's header, its datum
    /// written by apache-avro with the v1 schema.
    fn v1_record(r: &CheckResult) -> Vec<u8> {
        older_record(r, 0, 21)
    }

    /// A record of published version `index` (its first `fields` fields), written by apache-avro.
    fn older_record(r: &CheckResult, index: usize, fields_of_version: usize) -> Vec<u8> {
        use apache_avro::types::Value;
        use apache_avro::writer::datum::GenericDatumWriter;
        let v1 = &super::super::schema::KNOWN[index];
        let Value::Record(mut fields) = super::super::datum::tests::to_value(r) else { unreachable!() };
        fields.truncate(fields_of_version);
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&v1.fingerprint);
        out.extend(
            GenericDatumWriter::builder(&v1.schema)
                .build()
                .unwrap()
                .write_value_to_vec(Value::Record(fields))
                .unwrap(),
        );
        out
    }

    #[test]
    fn version_1_records_still_decode() {
        let mut r = sample();
        let bytes = v1_record(&r);
        assert_eq!(hex_fp(&bytes), "0f0f00cca2393457");
        assert_eq!(decode(&bytes), Ok(r.clone()));
        // and a v2 record carries the new fields
        r.producer_version = Some("0.1.0".into());
        r.redirects = Some(2);
        assert_eq!(decode(&encode(&r)), Ok(r.clone()));
        // a v2 record (no interval or thresholds) decodes into the current schema with none
        assert_eq!(decode(&older_record(&r, 1, 23)), Ok(r.clone()));
        // and a v3 record carries them
        r.interval_ms = Some(60_000);
        (r.down_after, r.up_after, r.quorum) = (Some(3), Some(2), Some(2));
        assert_eq!(decode(&encode(&r)), Ok(r));
    }

    #[test]
    fn a_version_1_reader_reads_version_2_records_by_resolution() {
        use apache_avro::reader::datum::GenericDatumReader;
        let v1 = &super::super::schema::KNOWN[0];
        let mut r = sample();
        r.producer_version = Some("0.1.0".into());
        r.redirects = Some(2);
        let bytes = encode(&r);
        let reader = GenericDatumReader::builder(&CURRENT.schema).reader_schema(&v1.schema).build().unwrap();
        let mut datum = &bytes[HEADER_LEN..];
        let value = reader.read_value(&mut datum).unwrap();
        assert!(datum.is_empty(), "the v1 reader skipped the new fields");
        let apache_avro::types::Value::Record(fields) = &value else { panic!("{value:?}") };
        assert_eq!(fields.len(), 21, "v1's fields only");
        let (producer_version, redirects) = (r.producer_version.take(), r.redirects.take());
        assert!(producer_version.is_some() && redirects.is_some());
        assert_eq!(from_value(value), Ok(r));
    }

    fn hex_fp(bytes: &[u8]) -> String {
        bytes[2..HEADER_LEN].iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn reads_records_with_the_fingerprint_older_builds_wrote() {
        // The header apache-avro 0.22 made sitemon write for schemas/check_result.v1.avsc;
        // records in topics carry it.
        let legacy = [0x15, 0x37, 0x16, 0xd9, 0x88, 0xe9, 0x58, 0x58];
        for r in [
            sample(),
            CheckResult::new(
                "s",
                "http://x/",
                "r",
                Utc.timestamp_micros(1).unwrap(),
                Utc.timestamp_micros(2).unwrap(),
                CheckStatus::Missed,
            ),
        ] {
            let mut old = v1_record(&r);
            old[2..HEADER_LEN].copy_from_slice(&legacy);
            assert_eq!(decode(&old), Ok(r.clone()));
            // The generic reader (older versions' path) knows the legacy fingerprint too.
            let mut datum = Strict { rest: &old[HEADER_LEN..], short: false };
            let value = reader_for(&legacy).expect("legacy reader").read_value(&mut datum).unwrap();
            assert_eq!(from_value(value), Ok(r));
        }
    }

    #[test]
    fn rejects_poison_with_a_reason() {
        let good = encode(&sample());
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
        assert_eq!(decode(&[0, 0, 0, 0, 7, 1]), Err(DecodeError::RegistryFraming(7)));
        assert!(matches!(decode(b"{\"json\":1}"), Err(DecodeError::UnknownFraming(_))));
        let mut other_fp = good.clone();
        other_fp[5] ^= 0xff;
        assert!(matches!(decode(&other_fp), Err(DecodeError::UnknownSchema(_))));
        assert!(matches!(decode(&good[..good.len() - 3]), Err(DecodeError::Datum(_))));
        // A datum whose trailing fields are all null unions: cutting any of them is caught.
        let t = Utc.timestamp_micros(1).unwrap();
        let nulls = encode(&CheckResult::new("s", "http://x/", "r", t, t, CheckStatus::Success));
        for cut in 1..8 {
            assert!(matches!(decode(&nulls[..nulls.len() - cut]), Err(DecodeError::Datum(_))), "cut {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(DecodeError::Trailing(1)));
    }
}
