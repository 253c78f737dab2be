//! The Confluent schema-registry framing (`00`, the registry's 4-byte big-endian schema id, the
//! datum) and the writer schemas learnt from a registry by id, each read into the current schema.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;

use super::datum;
use super::framing::{DecodeError, Strict};
use super::schema::CURRENT;
use super::value::from_value;
use crate::domain::CheckResult;

const MAGIC: u8 = 0;
const HEADER_LEN: usize = 5;

/// The schema id of a record in the Confluent framing, or `None` for any other framing.
pub fn registry_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [MAGIC, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Encodes a result with the current schema in the Confluent framing, under the id the registry
/// gave the current schema.
pub fn encode_registered(result: &CheckResult, schema_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 128 + result.url.len());
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    datum::write(result, &mut out);
    out
}

enum Writer {
    /// The registry's text is the current schema (same canonical form): the fast codec reads it.
    Current,
    /// Another schema that resolves into the current one.
    Other(Box<Schema>),
    /// A schema sitemon cannot read its records with; every record under it is a dead letter.
    Unusable(String),
}

/// Writer schemas by registry id, as the registry returned their text. The registry re-serialises
/// schemas (Karapace: compact, keys sorted), so the text is compared by its Parsing Canonical Form,
/// never byte for byte.
#[derive(Default)]
pub struct WriterSchemas {
    by_id: HashMap<u32, Writer>,
}

impl WriterSchemas {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn knows(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Learns the schema the registry holds under `id`.
    pub fn learn(&mut self, id: u32, json: &str) {
        self.by_id.insert(id, writer(json));
    }

    /// Decodes a Confluent-framed record whose schema id was learnt.
    pub fn decode(&self, bytes: &[u8]) -> Result<CheckResult, DecodeError> {
        let id = registry_id(bytes)
            .ok_or_else(|| DecodeError::UnknownFraming(bytes[..bytes.len().min(4)].to_vec()))?;
        let body = &bytes[HEADER_LEN..];
        match self.by_id.get(&id) {
            None => Err(DecodeError::RegistryFraming(id)),
            Some(Writer::Unusable(why)) => Err(DecodeError::RegistrySchema(why.clone())),
            Some(Writer::Current) => match datum::read(body).map_err(DecodeError::Datum)? {
                (result, []) => Ok(result),
                (_, rest) => Err(DecodeError::Trailing(rest.len())),
            },
            Some(Writer::Other(schema)) => {
                let reader = GenericDatumReader::builder(schema)
                    .reader_schema(&CURRENT.schema)
                    .build()
                    .map_err(|e| DecodeError::RegistrySchema(format!("schema id {id}: {e}")))?;
                let mut datum = Strict { rest: body, short: false };
                let value = reader.read_value(&mut datum).map_err(|e| DecodeError::Datum(e.to_string()))?;
                if datum.short {
                    return Err(DecodeError::Datum("the datum ends before its last field".into()));
                }
                if !datum.rest.is_empty() {
                    return Err(DecodeError::Trailing(datum.rest.len()));
                }
                from_value(value).map_err(DecodeError::Datum)
            }
        }
    }
}

fn writer(json: &str) -> Writer {
    // The canonical form drops logical types, so equal fingerprints do not make equal meaning
    // (`timestamp-millis` where sitemon writes micros): the fast path also needs the same
    // logical annotations, in the same places.
    if super::canonical::fingerprint(json).is_ok_and(|fp| fp == CURRENT.fingerprint)
        && annotations(json) == annotations(super::schema::CURRENT_SCHEMA_JSON)
    {
        return Writer::Current;
    }
    let schema = match Schema::parse_str(json) {
        Ok(s) => s,
        Err(e) => return Writer::Unusable(format!("the registry's schema does not parse: {e}")),
    };
    match GenericDatumReader::builder(&schema).reader_schema(&CURRENT.schema).build() {
        Ok(_) => Writer::Other(Box::new(schema)),
        Err(e) => Writer::Unusable(format!("the registry's schema does not resolve into sitemon's: {e}")),
    }
}

/// Every `logicalType`, `precision` and `scale` of a schema, in a fixed order; `None` if the
/// text is not JSON.
fn annotations(json: &str) -> Option<Vec<String>> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for key in ["logicalType", "precision", "scale"] {
                    if let Some(a) = m.get(key) {
                        out.push(format!("{key}={a}"));
                    }
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(xs) => xs.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    walk(&v, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CheckStatus, FailureKind};
    use apache_avro::types::Value;
    use chrono::{TimeZone, Utc};

    fn sample() -> CheckResult {
        let t = Utc.timestamp_micros(1_763_800_000_000_001).unwrap();
        let mut r = CheckResult::new("site-a", "https://a.test/", "eu", t, t, CheckStatus::Success);
        r.status_code = Some(200);
        r.total_us = Some(5);
        r.fail(FailureKind::Timeout, "slow");
        r
    }

    /// Compact, keys sorted: how Karapace returns a schema from `GET /schemas/ids/{id}`.
    fn reserialised(json: &str) -> String {
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(json).unwrap()).unwrap()
    }

    #[test]
    fn round_trips_through_the_confluent_framing() {
        let r = sample();
        let bytes = encode_registered(&r, 0x0102_0304);
        assert_eq!(bytes[..5], [0, 1, 2, 3, 4]);
        assert_eq!(registry_id(&bytes), Some(0x0102_0304));
        let mut schemas = WriterSchemas::new();
        assert_eq!(schemas.decode(&bytes), Err(DecodeError::RegistryFraming(0x0102_0304)));
        schemas.learn(0x0102_0304, &reserialised(super::super::schema::CURRENT_SCHEMA_JSON));
        assert!(matches!(schemas.by_id.get(&0x0102_0304), Some(Writer::Current)));
        assert_eq!(schemas.decode(&bytes), Ok(r));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(schemas.decode(&long), Err(DecodeError::Trailing(1)));
    }

    #[test]
    fn reads_a_foreign_writer_schema_by_resolution() {
        // A writer schema with fewer fields (the rest default to null) and one more the current
        // schema does not know (skipped), its datum encoded by apache-avro, not sitemon's codec.
        let writer = r#"{"type":"record","name":"CheckResult","namespace":"dev.sitemon","fields":[
            {"name":"check_id","type":{"type":"string","logicalType":"uuid"}},
            {"name":"site_id","type":"string"},{"name":"url","type":"string"},{"name":"region","type":"string"},
            {"name":"scheduled_at","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"started_at","type":{"type":"long","logicalType":"timestamp-micros"}},
            {"name":"status","type":{"type":"enum","name":"CheckStatus","symbols":["SUCCESS","FAILURE","MISSED"]}},
            {"name":"extra","type":"string"}]}"#;
        let schema = Schema::parse_str(writer).unwrap();
        let r = sample();
        let value = Value::Record(vec![
            ("check_id".into(), Value::String(r.check_id.to_string())),
            ("site_id".into(), Value::String(r.site_id.clone())),
            ("url".into(), Value::String(r.url.clone())),
            ("region".into(), Value::String(r.region.clone())),
            ("scheduled_at".into(), Value::TimestampMicros(r.scheduled_at.timestamp_micros())),
            ("started_at".into(), Value::TimestampMicros(r.started_at.timestamp_micros())),
            ("status".into(), Value::Enum(0, "SUCCESS".into())),
            ("extra".into(), Value::String("x".into())),
        ]);
        let mut bytes = vec![0, 0, 0, 0, 9];
        let avro = apache_avro::writer::datum::GenericDatumWriter::builder(&schema).build().unwrap();
        bytes.extend(avro.write_value_to_vec(value).unwrap());
        let mut schemas = WriterSchemas::new();
        schemas.learn(9, &reserialised(writer));
        let got = schemas.decode(&bytes).unwrap();
        assert_eq!((got.check_id, got.status, got.status_code), (r.check_id, CheckStatus::Success, None));
        assert!(matches!(schemas.decode(&bytes[..bytes.len() - 1]), Err(DecodeError::Datum(_))));
    }

    #[test]
    fn records_under_schemas_sitemon_cannot_read_are_errors_with_a_reason() {
        let mut schemas = WriterSchemas::new();
        // apache-avro resolves lazily: a record of another shape fails when it is read.
        schemas.learn(1, r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"int"}]}"#);
        schemas.learn(2, "not json");
        assert!(matches!(schemas.decode(&[0, 0, 0, 0, 1, 2]), Err(DecodeError::Datum(_))));
        assert!(matches!(schemas.decode(&[0, 0, 0, 0, 2, 2]), Err(DecodeError::RegistrySchema(_))));
    }

    #[test]
    fn a_schema_that_differs_only_in_logical_types_is_not_read_as_sitemons() {
        let ours = crate::wire::schema::CURRENT_SCHEMA_JSON;
        assert!(matches!(writer(ours), Writer::Current));
        let millis = ours.replacen("timestamp-micros", "timestamp-millis", 1);
        assert_ne!(millis, ours);
        assert!(!matches!(writer(&millis), Writer::Current), "same canonical form, other meaning");
    }
}
