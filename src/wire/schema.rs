//! The Avro schemas built into the binary: the current one (writer) and every published
//! version (readable), each with its CRC-64-AVRO (Rabin) fingerprint.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;

/// The schema new records are written with.
pub const CURRENT_SCHEMA_JSON: &str = include_str!("../../schemas/check_result.avsc");

/// Every published version, oldest first. Never remove one: old records must stay readable.
pub const KNOWN_SCHEMAS_JSON: &[&str] = &[include_str!("../../schemas/check_result.v1.avsc")];

pub struct KnownSchema {
    pub schema: Schema,
    pub fingerprint: [u8; 8],
}

fn known(json: &str) -> KnownSchema {
    let schema = Schema::parse_str(json).expect("built-in schema parses (checked by tests)");
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let fingerprint = bytes.try_into().expect("rabin fingerprints are 8 bytes");
    KnownSchema { schema, fingerprint }
}

pub static CURRENT: LazyLock<KnownSchema> = LazyLock::new(|| known(CURRENT_SCHEMA_JSON));

pub static KNOWN: LazyLock<Vec<KnownSchema>> =
    LazyLock::new(|| KNOWN_SCHEMAS_JSON.iter().map(|j| known(j)).collect());

/// One reader per published version, each resolving into the current schema; built once.
static READERS: LazyLock<Vec<([u8; 8], GenericDatumReader<'static>)>> = LazyLock::new(|| {
    KNOWN
        .iter()
        .map(|k| {
            let reader = GenericDatumReader::builder(&k.schema)
                .reader_schema(&CURRENT.schema)
                .build()
                .expect("every published schema resolves into the current one");
            (k.fingerprint, reader)
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

    #[test]
    fn current_schema_is_a_published_version() {
        assert!(
            KNOWN.iter().any(|k| k.fingerprint == CURRENT.fingerprint),
            "schemas/check_result.avsc changed: publish it as a new schemas/check_result.vN.avsc"
        );
    }
}
