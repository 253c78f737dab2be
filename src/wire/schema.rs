//! The Avro schemas built into the binary: the current one (writer) and every published
//! version (readable), each with its CRC-64-AVRO fingerprint of the specification's Parsing
//! Canonical Form, and the fingerprint older sitemon builds wrote for it.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;

use super::canonical;

/// The schema new records are written with.
pub const CURRENT_SCHEMA_JSON: &str = include_str!("../../schemas/check_result.avsc");

/// A published schema version.
pub struct Published {
    pub json: &'static str,
    /// What sitemon wrote in the header before it computed the specification's canonical form:
    /// apache-avro 0.22's fingerprint, whose form keeps logical types as `{"type":"long"}`
    /// (AVRO-4004). Records in topics carry it, so it stays readable; nothing writes it any more,
    /// and a version published after the fix has none.
    pub legacy_fingerprint: Option<[u8; 8]>,
}

/// Every published version, oldest first. Never remove one: old records must stay readable.
pub const PUBLISHED: &[Published] = &[
    Published {
        json: include_str!("../../schemas/check_result.v1.avsc"),
        legacy_fingerprint: Some(LEGACY_V1),
    },
    Published { json: include_str!("../../schemas/check_result.v2.avsc"), legacy_fingerprint: None },
    Published { json: include_str!("../../schemas/check_result.v3.avsc"), legacy_fingerprint: None },
    Published { json: include_str!("../../schemas/check_result.v4.avsc"), legacy_fingerprint: None },
    Published { json: include_str!("../../schemas/check_result.v5.avsc"), legacy_fingerprint: None },
];

/// apache-avro 0.22's `fingerprint::<Rabin>()` of check_result.v1.avsc, as its headers carry it
/// (checked by a test). The `avro` 1.12.1 package from PyPI computes the same.
const LEGACY_V1: [u8; 8] = [0x15, 0x37, 0x16, 0xd9, 0x88, 0xe9, 0x58, 0x58];

pub struct KnownSchema {
    pub schema: Schema,
    /// The specification's fingerprint: what the header of a record written with it carries.
    pub fingerprint: [u8; 8],
    pub legacy_fingerprint: Option<[u8; 8]>,
}

impl KnownSchema {
    /// The fingerprints that name this schema in a header: the specification's and the legacy one.
    pub fn fingerprints(&self) -> impl Iterator<Item = [u8; 8]> {
        std::iter::once(self.fingerprint).chain(self.legacy_fingerprint)
    }
}

fn known(json: &str, legacy_fingerprint: Option<[u8; 8]>) -> KnownSchema {
    let schema = Schema::parse_str(json).expect("built-in schema parses (checked by tests)");
    let fingerprint = canonical::fingerprint(json).expect("built-in schema is canonical (checked by tests)");
    KnownSchema { schema, fingerprint, legacy_fingerprint }
}

/// The current schema; its legacy fingerprint is that of the published version it equals.
pub static CURRENT: LazyLock<KnownSchema> = LazyLock::new(|| {
    let fingerprint = canonical::fingerprint(CURRENT_SCHEMA_JSON).ok();
    let legacy = KNOWN.iter().find(|k| Some(k.fingerprint) == fingerprint).and_then(|k| k.legacy_fingerprint);
    known(CURRENT_SCHEMA_JSON, legacy)
});

pub static KNOWN: LazyLock<Vec<KnownSchema>> =
    LazyLock::new(|| PUBLISHED.iter().map(|p| known(p.json, p.legacy_fingerprint)).collect());

/// Whether a header's fingerprint names the current schema (read by the fast path).
pub fn is_current(fp: &[u8]) -> bool {
    CURRENT.fingerprints().any(|f| f == fp)
}

/// One reader per fingerprint of each published version, each resolving into the current
/// schema; built once.
static READERS: LazyLock<Vec<([u8; 8], GenericDatumReader<'static>)>> = LazyLock::new(|| {
    KNOWN
        .iter()
        .flat_map(|k| k.fingerprints().map(move |fp| (fp, k)))
        .map(|(fp, k)| {
            let reader = GenericDatumReader::builder(&k.schema)
                .reader_schema(&CURRENT.schema)
                .build()
                .expect("every published schema resolves into the current one");
            (fp, reader)
        })
        .collect()
});

/// The reader for records written with the schema of this fingerprint, if it is built in.
pub fn reader_for(fp: &[u8]) -> Option<&'static GenericDatumReader<'static>> {
    READERS.iter().find(|(f, _)| f == fp).map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn current_schema_is_a_published_version() {
        assert!(
            KNOWN.iter().any(|k| k.fingerprint == CURRENT.fingerprint),
            "schemas/check_result.avsc changed: publish it as a new schemas/check_result.vN.avsc"
        );
    }

    /// The fingerprint of every file in schemas/, as the bytes of a single-object header, computed
    /// by independent implementations: Apache Avro 1.12.1 (Java, org.apache.avro:avro:1.12.1 from
    /// Maven Central), `scripts/avro-peer fingerprint schemas/*.avsc`, i.e.
    /// `SchemaNormalization.parsingFingerprint64` written little-endian; and fastavro 1.13.1
    /// (PyPI) in a throwaway venv: `fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(
    /// fastavro.schema.parse_schema(json.load(f))), "CRC-64-AVRO")`, which printed the same.
    /// (The `avro` 1.12.1 package from PyPI prints 153716d988e95858: its canonical form keeps
    /// `{"type":"long"}` for logical types, the same deviation as apache-avro's.)
    /// check_result.v2.avsc's, v3's, v4's, v5's and incident_event.avsc's (every version) by
    /// `scripts/avro-peer fingerprint` (Java Avro 1.12.1) only.
    const VECTORS: &[(&str, &str)] = &[
        ("check_result.avsc", "851ce3e8d8000993"),
        ("check_result.v1.avsc", "0f0f00cca2393457"),
        ("check_result.v2.avsc", "9eecd66d233dd4d0"),
        ("check_result.v3.avsc", "eb22158291aa9b65"),
        ("check_result.v4.avsc", "5a9ce20cd3df3cd4"),
        ("check_result.v5.avsc", "851ce3e8d8000993"),
        ("incident_event.avsc", "6aabb0a57f0aca68"),
        ("incident_event.v2.avsc", "d18058b9751a43bd"),
        ("incident_event.v1.avsc", "ef9c8c8bb25f50fe"),
    ];

    #[test]
    fn every_schema_has_the_fingerprint_independent_implementations_compute() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".avsc"))
            .collect();
        files.sort();
        assert!(files.len() >= 2, "{files:?}");
        for file in &files {
            let json = std::fs::read_to_string(dir.join(file)).unwrap();
            let (_, want) = VECTORS
                .iter()
                .find(|(f, _)| f == file)
                .unwrap_or_else(|| panic!("schemas/{file} has no test vector: compute one (see VECTORS)"));
            assert_eq!(hex(&canonical::fingerprint(&json).unwrap()), *want, "schemas/{file}");
        }
        assert_eq!(hex(&CURRENT.fingerprint), "851ce3e8d8000993");
    }

    #[test]
    fn current_schema_has_the_canonical_form_of_the_reference_implementation() {
        // SchemaNormalization.toParsingForm of schemas/check_result.avsc, Apache Avro 1.12.1
        // (Java), printed by `scripts/avro-peer fingerprint schemas/check_result.avsc`.
        let want = concat!(
            r#"{"name":"dev.sitemon.CheckResult","type":"record","fields":[{"name":"check_id","type":"string"},"#,
            r#"{"name":"site_id","type":"string"},{"name":"url","type":"string"},{"name":"region","type":"string"},"#,
            r#"{"name":"scheduled_at","type":"long"},{"name":"started_at","type":"long"},"#,
            r#"{"name":"status","type":{"name":"dev.sitemon.CheckStatus","type":"enum","symbols":["SUCCESS","FAILURE","MISSED"]}},"#,
            r#"{"name":"failure_kind","type":["null",{"name":"dev.sitemon.FailureKind","type":"enum","symbols":["TIMEOUT","DNS","#,
            r#""CONNECT","TLS","PROTOCOL","UNEXPECTED_STATUS","PATTERN_NOT_FOUND","BODY_TOO_LARGE","REDIRECT_LIMIT","OTHER"]}]},"#,
            r#"{"name":"error","type":["null","string"]},{"name":"status_code","type":["null","int"]},"#,
            r#"{"name":"http_version","type":["null","string"]},{"name":"remote_addr","type":["null","string"]},"#,
            r#"{"name":"dns_us","type":["null","long"]},{"name":"connect_us","type":["null","long"]},"#,
            r#"{"name":"tls_us","type":["null","long"]},{"name":"ttfb_us","type":["null","long"]},"#,
            r#"{"name":"total_us","type":["null","long"]},{"name":"body_bytes","type":["null","long"]},"#,
            r#"{"name":"pattern","type":["null","string"]},{"name":"pattern_matched","type":["null","boolean"]},"#,
            r#"{"name":"tls_not_after","type":["null","long"]},{"name":"producer_version","type":["null","string"]},"#,
            r#"{"name":"redirects","type":["null","int"]},{"name":"interval_ms","type":["null","long"]},"#,
            r#"{"name":"down_after","type":["null","int"]},{"name":"up_after","type":["null","int"]},"#,
            r#"{"name":"quorum","type":["null","int"]},{"name":"degraded_above_ms","type":["null","long"]},"#,
            r#"{"name":"cert_warn_days","type":["null","int"]},{"name":"missed_since","type":["null","long"]},"#,
            r#"{"name":"missed_slots","type":["null","int"]}]}"#,
        );
        assert_eq!(canonical::parsing_canonical_form(CURRENT_SCHEMA_JSON).unwrap(), want);
    }

    #[test]
    fn legacy_fingerprints_are_what_apache_avro_wrote() {
        // Where the pinned legacy values come from. If an apache-avro upgrade fixes AVRO-4004 this
        // fails: keep the pinned values (records in topics carry them) and drop this check.
        for (p, k) in PUBLISHED.iter().zip(KNOWN.iter()) {
            let Some(legacy) = p.legacy_fingerprint else { continue };
            let schema = Schema::parse_str(p.json).unwrap();
            let apache = schema.fingerprint::<apache_avro::rabin::Rabin>().bytes;
            assert_eq!(hex(&legacy), hex(&apache), "apache-avro's fingerprint changed");
            assert_ne!(legacy, k.fingerprint, "a legacy fingerprint differs from the spec's");
            assert!(reader_for(&legacy).is_some() && reader_for(&k.fingerprint).is_some());
        }
        assert!(is_current(&CURRENT.fingerprint) && !is_current(&LEGACY_V1));
        assert!(reader_for(&LEGACY_V1).is_some(), "version 1's legacy header is still read");
    }
}
