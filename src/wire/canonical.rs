//! The Avro specification's Parsing Canonical Form of a schema and its CRC-64-AVRO (Rabin)
//! fingerprint, the one single-object headers carry; written from the specification because
//! apache-avro 0.22 keeps logical types as `{"type":"long"}` in the form (AVRO-4004).
//!
//! The rules ("Transforming into Parsing Canonical Form"): PRIMITIVES (`"long"`, never
//! `{"type":"long"}`), FULLNAMES (names resolved against the enclosing namespace, `namespace`
//! dropped), STRIP (only `type`, `name`, `fields`, `symbols`, `items`, `values` and `size` stay;
//! `logicalType`, `doc`, `default`, `aliases`, `order`, `precision`, … go), ORDER (in that order),
//! STRINGS (no escapes: serde_json has already decoded them), INTEGERS (`size` as a bare
//! integer) and WHITESPACE (none). As in the reference implementation, a named type that was
//! already written is written again as its quoted fullname.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Why a schema has no canonical form: it is not a valid Avro schema.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    #[error("schema is not JSON: {0}")]
    Json(String),
    #[error("{0} is not a schema")]
    NotASchema(String),
    #[error("`{0}` is neither a primitive type nor a named type defined before")]
    UnknownType(String),
    #[error("a {0} needs a `{1}`")]
    Missing(&'static str, &'static str),
    #[error("`{0}` is not a valid Avro name")]
    BadName(String),
    #[error("`size` must be a non-negative integer, found {0}")]
    BadSize(String),
}

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

/// The Parsing Canonical Form of the schema in `json`.
pub fn parsing_canonical_form(json: &str) -> Result<String, CanonicalError> {
    let schema: Value = serde_json::from_str(json).map_err(|e| CanonicalError::Json(e.to_string()))?;
    let mut canon = Canon { out: String::with_capacity(json.len()), defined: HashSet::new() };
    canon.schema(&schema, "")?;
    Ok(canon.out)
}

/// The CRC-64-AVRO fingerprint of the schema in `json`, as the 8 little-endian bytes that follow
/// `C3 01` in a single-object header.
pub fn fingerprint(json: &str) -> Result<[u8; 8], CanonicalError> {
    Ok(crc64_avro(parsing_canonical_form(json)?.as_bytes()).to_le_bytes())
}

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// The specification's 64-bit Rabin fingerprint ("CRC-64-AVRO") of `bytes`.
pub fn crc64_avro(bytes: &[u8]) -> u64 {
    bytes.iter().fold(EMPTY, |fp, &b| (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize])
}

struct Canon {
    out: String,
    /// Fullnames of the named types written so far.
    defined: HashSet<String>,
}

impl Canon {
    /// Writes `schema`, whose enclosing namespace is `ns` ("" for none).
    fn schema(&mut self, schema: &Value, ns: &str) -> Result<(), CanonicalError> {
        match schema {
            Value::String(name) => self.reference(name, ns),
            Value::Array(branches) => {
                self.out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.schema(branch, ns)?;
                }
                self.out.push(']');
                Ok(())
            }
            Value::Object(attrs) => self.object(attrs, ns),
            other => Err(CanonicalError::NotASchema(other.to_string())),
        }
    }

    /// A primitive type or a named type written before, by name.
    fn reference(&mut self, name: &str, ns: &str) -> Result<(), CanonicalError> {
        if PRIMITIVES.contains(&name) {
            self.quoted(name);
            return Ok(());
        }
        // A dotted name is a fullname; any other is in the enclosing namespace (no fallback to
        // the null namespace: Java's parser has one, the specification and fastavro do not).
        let full = fullname(name, None, ns)?;
        if !self.defined.contains(&full) {
            return Err(CanonicalError::UnknownType(name.to_owned()));
        }
        self.quoted(&full);
        Ok(())
    }

    fn object(&mut self, attrs: &Map<String, Value>, ns: &str) -> Result<(), CanonicalError> {
        let kind = match attrs.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            _ => return Err(CanonicalError::Missing("schema object", "type name")),
        };
        match kind {
            "record" => self.named("record", attrs, ns),
            "enum" => self.named("enum", attrs, ns),
            "fixed" => self.named("fixed", attrs, ns),
            "array" => {
                let items = attrs.get("items").ok_or(CanonicalError::Missing("array", "items"))?;
                self.out.push_str(r#"{"type":"array","items":"#);
                self.schema(items, ns)?;
                self.out.push('}');
                Ok(())
            }
            "map" => {
                let values = attrs.get("values").ok_or(CanonicalError::Missing("map", "values"))?;
                self.out.push_str(r#"{"type":"map","values":"#);
                self.schema(values, ns)?;
                self.out.push('}');
                Ok(())
            }
            // A primitive, whatever else it carries (logicalType, precision, …), or a reference.
            name => self.reference(name, ns),
        }
    }

    fn named(
        &mut self,
        kind: &'static str,
        attrs: &Map<String, Value>,
        ns: &str,
    ) -> Result<(), CanonicalError> {
        let name = attrs.get("name").and_then(Value::as_str).ok_or(CanonicalError::Missing(kind, "name"))?;
        let namespace = match attrs.get("namespace") {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) => Some(n.as_str()),
            Some(other) => return Err(CanonicalError::BadName(other.to_string())),
        };
        let full = fullname(name, namespace, ns)?;
        if !self.defined.insert(full.clone()) {
            self.quoted(&full);
            return Ok(());
        }
        let inner_ns = full.rsplit_once('.').map_or("", |(n, _)| n);
        self.out.push_str(r#"{"name":"#);
        self.quoted(&full);
        self.out.push_str(r#","type":"#);
        self.quoted(kind);
        match kind {
            "record" => {
                let fields = attrs
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or(CanonicalError::Missing(kind, "fields"))?;
                self.out.push_str(r#","fields":["#);
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    let name = field.get("name").and_then(Value::as_str);
                    let name = name.ok_or(CanonicalError::Missing("field", "name"))?;
                    check_name(name)?;
                    let ty = field.get("type").ok_or(CanonicalError::Missing("field", "type"))?;
                    self.out.push_str(r#"{"name":"#);
                    self.quoted(name);
                    self.out.push_str(r#","type":"#);
                    self.schema(ty, inner_ns)?;
                    self.out.push('}');
                }
                self.out.push(']');
            }
            "enum" => {
                let symbols = attrs
                    .get("symbols")
                    .and_then(Value::as_array)
                    .ok_or(CanonicalError::Missing(kind, "symbols"))?;
                self.out.push_str(r#","symbols":["#);
                for (i, symbol) in symbols.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    let symbol =
                        symbol.as_str().ok_or_else(|| CanonicalError::BadName(symbol.to_string()))?;
                    check_name(symbol)?;
                    self.quoted(symbol);
                }
                self.out.push(']');
            }
            _ => {
                let size = attrs.get("size").ok_or(CanonicalError::Missing(kind, "size"))?;
                // [INTEGERS]: quotes and leading zeros go.
                let n = match size {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse::<u64>().ok(),
                    _ => None,
                };
                let n = n.ok_or_else(|| CanonicalError::BadSize(size.to_string()))?;
                self.out.push_str(&format!(r#","size":{n}"#));
            }
        }
        self.out.push('}');
        Ok(())
    }

    fn quoted(&mut self, s: &str) {
        self.out.push('"');
        self.out.push_str(s);
        self.out.push('"');
    }
}

/// The fullname of `name` declared with `namespace` (if any) inside namespace `ns`.
fn fullname(name: &str, namespace: Option<&str>, ns: &str) -> Result<String, CanonicalError> {
    let full = match namespace.unwrap_or(ns) {
        _ if name.contains('.') => name.to_owned(),
        "" => name.to_owned(),
        space => format!("{space}.{name}"),
    };
    full.split('.').try_for_each(check_name)?;
    Ok(full)
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the specification's names, namespace parts and symbols: nothing
/// that would need escaping in the canonical form.
fn check_name(name: &str) -> Result<(), CanonicalError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(()) } else { Err(CanonicalError::BadName(name.to_owned())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcf(json: &str) -> String {
        parsing_canonical_form(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // The expected forms and fingerprints below were computed by Apache Avro 1.12.1 (Java, Maven
    // Central org.apache.avro:avro:1.12.1): `scripts/avro-peer fingerprint FILE` with each schema
    // in a file, which prints SchemaNormalization.toParsingForm and the little-endian bytes of
    // SchemaNormalization.parsingFingerprint64; fastavro 1.13.1 (PyPI) gives the same
    // (`fastavro.schema.fingerprint(to_parsing_canonical_form(parse_schema(..)), "CRC-64-AVRO")`).

    #[test]
    fn fingerprints_primitives_as_the_reference_implementation() {
        for (schema, fp) in [
            (r#""null""#, "8a8f25cce724dd63"),
            (r#""long""#, "b71df49344e154d0"),
            (r#""string""#, "c70345637248018f"),
        ] {
            assert_eq!(pcf(schema), schema);
            assert_eq!(hex(&fingerprint(schema).unwrap()), fp, "{schema}");
        }
        assert_eq!(crc64_avro(b""), EMPTY);
    }

    #[test]
    fn resolves_names_and_strips_what_parsing_does_not_need() {
        // Namespaces inherited, overridden, dotted and emptied; references by short name and by
        // fullname; logical types, a decimal's precision and scale, docs, defaults, aliases,
        // orders and custom attributes; an escaped name.
        let schema = r#"{
          "type": "record", "name": "Outer", "namespace": "a.b", "doc": "d", "aliases": ["Old"],
          "fields": [
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"], "default": "A",
              "doc": "e"}, "default": "A", "order": "descending", "aliases": ["ee"]},
            {"name": "e2", "type": "E"},
            {"name": "inner", "type": {"type": "record", "name": "c.Inner", "fields": [
              {"name": "f", "type": {"type": "fixed", "name": "F", "size": 4, "aliases": ["G"]}},
              {"name": "g", "type": "a.b.E"}]}},
            {"name": "f2", "type": "c.F"},
            {"name": "m", "type": {"type": "map", "values": {"type": "array",
              "items": ["null", {"type": "int", "logicalType": "date"}]}}},
            {"name": "top", "type": {"type": "record", "name": "T", "namespace": "", "fields": [
              {"name": "x", "type": {"type": "string", "avro.java.string": "String"}}]}},
            {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}},
            {"name": "\u0041bc", "type": {"type": "long", "logicalType": "timestamp-micros"}}
          ]
        }"#;
        let want = concat!(
            r#"{"name":"a.b.Outer","type":"record","fields":["#,
            r#"{"name":"e","type":{"name":"a.b.E","type":"enum","symbols":["A","B"]}},"#,
            r#"{"name":"e2","type":"a.b.E"},"#,
            r#"{"name":"inner","type":{"name":"c.Inner","type":"record","fields":["#,
            r#"{"name":"f","type":{"name":"c.F","type":"fixed","size":4}},{"name":"g","type":"a.b.E"}]}},"#,
            r#"{"name":"f2","type":"c.F"},"#,
            r#"{"name":"m","type":{"type":"map","values":{"type":"array","items":["null","int"]}}},"#,
            r#"{"name":"top","type":{"name":"T","type":"record","fields":[{"name":"x","type":"string"}]}},"#,
            r#"{"name":"u","type":"string"},{"name":"d","type":"bytes"},{"name":"Abc","type":"long"}]}"#,
        );
        assert_eq!(pcf(schema), want);
        assert_eq!(hex(&fingerprint(schema).unwrap()), "e842f3466b45ea17");
    }

    #[test]
    fn quoted_sizes_lose_their_quotes_and_leading_zeros() {
        assert_eq!(
            pcf(r#"{"type":"fixed","name":"F","size":"016"}"#),
            r#"{"name":"F","type":"fixed","size":16}"#
        );
        let negative = parsing_canonical_form(r#"{"type":"fixed","name":"F","size":-1}"#);
        assert!(matches!(negative, Err(CanonicalError::BadSize(_))), "{negative:?}");
    }

    #[test]
    fn refuses_what_is_not_a_schema() {
        let refused = |json: &str| parsing_canonical_form(json).expect_err(json);
        assert!(matches!(refused("{"), CanonicalError::Json(_)));
        assert!(matches!(refused("42"), CanonicalError::NotASchema(_)));
        assert!(matches!(refused(r#""Nowhere""#), CanonicalError::UnknownType(_)));
        assert!(matches!(
            refused(r#"{"type":"record","fields":[]}"#),
            CanonicalError::Missing("record", "name")
        ));
        assert!(matches!(
            refused(r#"{"type":"enum","name":"a-b","symbols":[]}"#),
            CanonicalError::BadName(_)
        ));
        assert!(matches!(
            refused(r#"{"type":"enum","name":"E","symbols":["x\"y"]}"#),
            CanonicalError::BadName(_)
        ));
        // A short reference resolves in the enclosing namespace only, as the specification says.
        let outside = r#"{"type":"record","name":"R","namespace":"n","fields":[
            {"name":"t","type":{"type":"fixed","name":"T","namespace":"","size":1}},
            {"name":"u","type":"T"}]}"#;
        assert_eq!(refused(outside), CanonicalError::UnknownType("T".into()));
    }
}
