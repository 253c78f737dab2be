//! Incident events on the wire: schemas/incident_event.avsc, framed like check results (Avro
//! single-object encoding, or the Confluent framing under a registry id). Low volume, so
//! apache-avro's generic writer and reader do the datum.

use std::sync::LazyLock;

use super::fields::Fields;
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use chrono::{DateTime, Utc};

use super::canonical;
use super::framing::{DecodeError, Strict};
use crate::domain::{EndReason, EventKind, FailureKind, Incident, IncidentEvent, IncidentKind};

/// The schema events are written with.
pub const EVENT_SCHEMA_JSON: &str = include_str!("../../schemas/incident_event.avsc");
/// The first published version (no `end_reason`), still read.
const EVENT_V1_JSON: &str = include_str!("../../schemas/incident_event.v1.avsc");
/// The second (no `incident_kind`), still read.
const EVENT_V2_JSON: &str = include_str!("../../schemas/incident_event.v2.avsc");

const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

struct EventSchema {
    schema: Schema,
    fingerprint: [u8; 8],
}

fn event_schema(json: &str) -> EventSchema {
    EventSchema {
        schema: Schema::parse_str(json).expect("built-in event schema parses (checked by tests)"),
        fingerprint: canonical::fingerprint(json)
            .expect("built-in event schema is canonical (checked by tests)"),
    }
}

static EVENT: LazyLock<EventSchema> = LazyLock::new(|| event_schema(EVENT_SCHEMA_JSON));
static EVENT_V1: LazyLock<EventSchema> = LazyLock::new(|| event_schema(EVENT_V1_JSON));
static EVENT_V2: LazyLock<EventSchema> = LazyLock::new(|| event_schema(EVENT_V2_JSON));

/// The CRC-64-AVRO fingerprint of the event schema's Parsing Canonical Form, as headers carry it.
pub fn event_fingerprint() -> [u8; 8] {
    EVENT.fingerprint
}

fn opt(v: Option<Value>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

fn symbol<T: Copy + PartialEq>(all: &[T], v: T, name: fn(T) -> &'static str) -> Value {
    let i = all.iter().position(|x| *x == v).expect("variant listed in ALL");
    Value::Enum(i as u32, name(v).to_owned())
}

/// The event as an Avro record of the schema (fields in its order).
fn to_value(e: &IncidentEvent) -> Value {
    let i = &e.incident;
    let micros = |t: DateTime<Utc>| Value::TimestampMicros(t.timestamp_micros());
    Value::Record(vec![
        ("event_id".into(), Value::Uuid(e.event_id)),
        ("kind".into(), symbol(&EventKind::ALL, e.kind, EventKind::as_str)),
        ("at".into(), micros(e.at)),
        ("incident_id".into(), Value::Uuid(i.incident_id)),
        ("site_id".into(), Value::String(i.site_id.clone())),
        ("region".into(), opt(i.region.clone().map(Value::String))),
        ("url".into(), Value::String(i.url.clone())),
        ("started_at".into(), micros(i.started_at)),
        ("confirmed_at".into(), micros(i.confirmed_at)),
        ("ended_at".into(), opt(i.ended_at.map(micros))),
        ("regions".into(), Value::Array(i.regions.iter().cloned().map(Value::String).collect())),
        (
            "failure_kind".into(),
            opt(i.failure_kind.map(|k| symbol(&FailureKind::ALL, k, FailureKind::as_str))),
        ),
        ("error".into(), opt(i.error.clone().map(Value::String))),
        ("failed_checks".into(), Value::Long(i.failed_checks)),
        ("end_reason".into(), opt(i.end_reason.map(|r| Value::String(r.as_str().to_owned())))),
        ("incident_kind".into(), Value::String(i.kind.as_str().to_owned())),
    ])
}

/// The datum alone.
fn datum(e: &IncidentEvent) -> Vec<u8> {
    GenericDatumWriter::builder(&EVENT.schema)
        .build()
        .and_then(|w| w.write_value_to_vec(to_value(e)))
        .expect("an event always fits its schema (checked by tests)")
}

/// Encodes an event as Avro single-object encoding: `C3 01`, the schema's fingerprint, the datum.
pub fn encode_event(e: &IncidentEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&EVENT.fingerprint);
    out.extend(datum(e));
    out
}

/// Encodes an event in the Confluent framing: `00`, the registry's 4-byte big-endian id of the
/// event schema, the datum.
pub fn encode_event_registered(e: &IncidentEvent, schema_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + 256);
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend(datum(e));
    out
}

/// Decodes an event in either framing. The Confluent framing is read with the built-in event
/// schemas whatever its id says, newest first, the first that reads the whole datum winning (a
/// reader that knows which id the registry gave it checks that itself): an event written by an
/// older sitemon under a registry stays readable.
pub fn decode_event(bytes: &[u8]) -> Result<IncidentEvent, DecodeError> {
    match bytes {
        [] => Err(DecodeError::Empty),
        [0, _, _, _, _, rest @ ..] => {
            let mut first = None;
            for writer in [&*EVENT, &*EVENT_V2, &*EVENT_V1] {
                match decode_datum(rest, writer) {
                    Ok(e) => return Ok(e),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            Err(first.expect("three schemas tried"))
        }
        _ if bytes.len() >= HEADER_LEN && bytes[..2] == MAGIC => {
            let writer = [&*EVENT, &*EVENT_V2, &*EVENT_V1]
                .into_iter()
                .find(|s| bytes[2..HEADER_LEN] == s.fingerprint)
                .ok_or_else(|| DecodeError::UnknownSchema(bytes[2..HEADER_LEN].to_vec()))?;
            decode_datum(&bytes[HEADER_LEN..], writer)
        }
        _ => Err(DecodeError::UnknownFraming(bytes[..bytes.len().min(4)].to_vec())),
    }
}

/// One datum written with `writer`, read into the current schema.
fn decode_datum(body: &[u8], writer: &EventSchema) -> Result<IncidentEvent, DecodeError> {
    let reader = GenericDatumReader::builder(&writer.schema)
        .reader_schema(&EVENT.schema)
        .build()
        .map_err(|e| DecodeError::Datum(e.to_string()))?;
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

fn from_value(value: Value) -> Result<IncidentEvent, String> {
    let Value::Record(fields) = value else { return Err(format!("expected a record, found {value:?}")) };
    let mut f = Fields(fields);
    let kind = f.symbol("kind")?.ok_or("field `kind` is null")?;
    let kind = EventKind::parse(&kind).ok_or_else(|| format!("field `kind`: unknown symbol {kind}"))?;
    let regions = match f.take("regions")? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(format!("field `regions`: expected strings, found {other:?}")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(format!("field `regions`: expected an array, found {other:?}")),
    };
    let failed_checks = match f.take("failed_checks")? {
        Value::Long(n) => n,
        other => return Err(format!("field `failed_checks`: expected a long, found {other:?}")),
    };
    let failure_kind =
        f.symbol("failure_kind")?.map(|s| FailureKind::parse(&s).unwrap_or(FailureKind::Other));
    let incident = Incident {
        incident_id: f.uuid("incident_id")?,
        // (A kind this build does not know, from a newer sitemon, reads as an outage.)
        kind: IncidentKind::parse(&f.string("incident_kind")?).unwrap_or_default(),
        site_id: f.string("site_id")?,
        region: f.opt_string("region")?,
        url: f.string("url")?,
        started_at: f.time("started_at")?,
        confirmed_at: f.time("confirmed_at")?,
        ended_at: f.opt_time("ended_at")?,
        end_reason: f.opt_string("end_reason")?.and_then(|r| EndReason::parse(&r)),
        regions,
        failure_kind,
        error: f.opt_string("error")?,
        failed_checks,
    };
    Ok(IncidentEvent { event_id: f.uuid("event_id")?, kind, at: f.time("at")?, incident })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn t(us: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(us).unwrap()
    }

    fn incident(region: Option<&str>) -> Incident {
        let started_at = t(1_800_000_000_000_001);
        Incident {
            incident_id: Incident::id_for("site-ä", region, started_at),
            kind: crate::domain::IncidentKind::Down,
            site_id: "site-ä".into(),
            region: region.map(str::to_owned),
            url: "https://例え.test/p?q=\"1\"".into(),
            started_at,
            confirmed_at: t(1_800_000_020_000_000),
            ended_at: None,
            end_reason: None,
            regions: vec!["eu".into(), "us".into()],
            failure_kind: Some(FailureKind::UnexpectedStatus),
            error: Some("status 503\n\tretry".into()),
            failed_checks: 3,
        }
    }

    fn samples() -> Vec<IncidentEvent> {
        let opened = IncidentEvent::new(EventKind::Opened, t(1_800_000_020_000_000), &incident(None));
        let mut inc = incident(Some("eu"));
        inc.ended_at = Some(t(1_800_000_090_000_000));
        inc.regions = vec!["eu".into()];
        inc.failure_kind = None;
        inc.error = None;
        inc.failed_checks = i64::MAX;
        inc.end_reason = Some(EndReason::Retired);
        let closed = IncidentEvent::new(EventKind::Closed, t(1_800_000_100_000_000), &inc);
        let mut none = incident(Some(""));
        none.regions = Vec::new();
        none.failure_kind = Some(FailureKind::Other);
        vec![opened, closed, IncidentEvent::new(EventKind::Opened, t(0), &none)]
    }

    #[test]
    fn round_trips_in_both_framings() {
        for e in samples() {
            let single = encode_event(&e);
            assert_eq!(single[..2], MAGIC);
            assert_eq!(single[2..HEADER_LEN], EVENT.fingerprint);
            assert_eq!(decode_event(&single), Ok(e.clone()));
            let registered = encode_event_registered(&e, 0x0102_0304);
            assert_eq!(registered[..5], [0, 1, 2, 3, 4]);
            assert_eq!(registered[5..], single[HEADER_LEN..], "the same datum");
            assert_eq!(decode_event(&registered), Ok(e));
        }
    }

    #[test]
    fn events_of_older_versions_are_still_read_in_both_framings() {
        // Written with incident_event.v1.avsc (no end_reason, no incident_kind) and v2 (no
        // incident_kind), with their fingerprints and in the registry's framing: read as DOWN.
        let e = &samples()[0];
        assert_eq!(e.incident.kind, IncidentKind::Down);
        for (schema, dropped) in
            [(&*EVENT_V1, &["end_reason", "incident_kind"][..]), (&*EVENT_V2, &["incident_kind"])]
        {
            let mut v = to_value(e);
            if let Value::Record(fields) = &mut v {
                fields.retain(|(name, _)| !dropped.contains(&name.as_str()));
            }
            let datum =
                GenericDatumWriter::builder(&schema.schema).build().unwrap().write_value_to_vec(v).unwrap();
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&schema.fingerprint);
            bytes.extend(&datum);
            let mut want = e.clone();
            if dropped.contains(&"end_reason") {
                want.incident.end_reason = None;
            }
            assert_eq!(decode_event(&bytes).unwrap(), want, "{dropped:?}");
            assert_ne!(schema.fingerprint, EVENT.fingerprint);
            let mut registered = vec![0, 0, 0, 0, 7];
            registered.extend(&datum);
            assert_eq!(decode_event(&registered).unwrap(), want, "registry framing, {dropped:?}");
        }
        // A slowness event goes through with its kind.
        let mut slow = e.clone();
        slow.incident.kind = IncidentKind::Degraded;
        assert_eq!(decode_event(&encode_event(&slow)).unwrap(), slow);
        assert_eq!(decode_event(&encode_event_registered(&slow, 9)).unwrap(), slow);
    }

    #[test]
    fn damaged_events_are_errors() {
        let good = encode_event(&samples()[0]);
        assert_eq!(decode_event(&[]), Err(DecodeError::Empty));
        assert!(matches!(decode_event(b"{}"), Err(DecodeError::UnknownFraming(_))));
        let mut other = good.clone();
        other[4] ^= 0xff;
        assert!(matches!(decode_event(&other), Err(DecodeError::UnknownSchema(_))));
        for cut in 1..4 {
            assert!(
                matches!(decode_event(&good[..good.len() - cut]), Err(DecodeError::Datum(_))),
                "cut {cut}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode_event(&long), Err(DecodeError::Trailing(1)));
        // A check result is not an event.
        let r = crate::domain::CheckResult::new(
            "s",
            "http://x/",
            "r",
            t(1),
            t(1),
            crate::domain::CheckStatus::Success,
        );
        assert!(matches!(decode_event(&super::super::encode(&r)), Err(DecodeError::UnknownSchema(_))));
    }

    #[test]
    fn event_schema_has_the_canonical_form_and_fingerprint_of_the_reference_implementation() {
        // SchemaNormalization.toParsingForm and parsingFingerprint64 (little-endian) of
        // schemas/incident_event.avsc, Apache Avro 1.12.1 (Java), printed by
        // `scripts/avro-peer fingerprint schemas/incident_event.avsc`.
        let want = concat!(
            r#"{"name":"dev.sitemon.IncidentEvent","type":"record","fields":[{"name":"event_id","type":"string"},"#,
            r#"{"name":"kind","type":{"name":"dev.sitemon.IncidentEventKind","type":"enum","symbols":["OPENED","CLOSED"]}},"#,
            r#"{"name":"at","type":"long"},{"name":"incident_id","type":"string"},{"name":"site_id","type":"string"},"#,
            r#"{"name":"region","type":["null","string"]},{"name":"url","type":"string"},"#,
            r#"{"name":"started_at","type":"long"},{"name":"confirmed_at","type":"long"},"#,
            r#"{"name":"ended_at","type":["null","long"]},{"name":"regions","type":{"type":"array","items":"string"}},"#,
            r#"{"name":"failure_kind","type":["null",{"name":"dev.sitemon.FailureKind","type":"enum","symbols":["TIMEOUT","DNS","#,
            r#""CONNECT","TLS","PROTOCOL","UNEXPECTED_STATUS","PATTERN_NOT_FOUND","BODY_TOO_LARGE","REDIRECT_LIMIT","OTHER"]}]},"#,
            r#"{"name":"error","type":["null","string"]},{"name":"failed_checks","type":"long"},"#,
            r#"{"name":"end_reason","type":["null","string"]},{"name":"incident_kind","type":"string"}]}"#,
        );
        assert_eq!(canonical::parsing_canonical_form(EVENT_SCHEMA_JSON).unwrap(), want);
        assert_eq!(hex(&event_fingerprint()), FINGERPRINT);
        assert_eq!(hex(&encode_event(&samples()[0])[..HEADER_LEN]), format!("c301{FINGERPRINT}"));
    }

    const FINGERPRINT: &str = "6aabb0a57f0aca68";
}
