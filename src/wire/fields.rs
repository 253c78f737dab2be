//! Reading the fields of a record apache-avro decoded (a check result of an older version, an
//! incident event), by name, naming the first field that does not fit.

use apache_avro::types::Value;
use chrono::{DateTime, Utc};

/// Reads fields out of a decoded record, naming the first field that does not fit. Fields added
/// after version 1 may be absent (a version-1 reader's view) and read as none.
pub(super) struct Fields(pub(super) Vec<(String, Value)>);

impl Fields {
    pub(super) fn take(&mut self, name: &str) -> Result<Value, String> {
        let i =
            self.0.iter().position(|(n, _)| n == name).ok_or_else(|| format!("field `{name}` is missing"))?;
        Ok(match self.0.swap_remove(i).1 {
            Value::Union(_, inner) => *inner,
            v => v,
        })
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    pub(super) fn string(&mut self, name: &str) -> Result<String, String> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            Value::Uuid(u) => Ok(u.to_string()),
            other => Err(format!("field `{name}`: expected a string, found {other:?}")),
        }
    }

    pub(super) fn opt_string(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.take(name)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(format!("field `{name}`: expected a string, found {other:?}")),
        }
    }

    pub(super) fn opt_long(&mut self, name: &str) -> Result<Option<i64>, String> {
        match self.take(name)? {
            Value::Null => Ok(None),
            Value::Long(n) | Value::TimestampMicros(n) => Ok(Some(n)),
            Value::Int(n) => Ok(Some(i64::from(n))),
            other => Err(format!("field `{name}`: expected a long, found {other:?}")),
        }
    }

    /// A count added after version 1: absent or null reads as none, a negative one is an error.
    pub(super) fn opt_count(&mut self, name: &str) -> Result<Option<u32>, String> {
        if !self.has(name) {
            return Ok(None);
        }
        self.opt_long(name)?.map(|n| super::datum::unsigned(name, n)).transpose()
    }

    pub(super) fn uuid(&mut self, name: &str) -> Result<uuid::Uuid, String> {
        match self.take(name)? {
            Value::Uuid(u) => Ok(u),
            Value::String(s) => uuid::Uuid::parse_str(&s).map_err(|e| format!("field `{name}`: {e}")),
            other => Err(format!("field `{name}`: expected a uuid, found {other:?}")),
        }
    }

    pub(super) fn time(&mut self, name: &str) -> Result<DateTime<Utc>, String> {
        self.opt_time(name)?.ok_or_else(|| format!("field `{name}` is null"))
    }

    pub(super) fn opt_time(&mut self, name: &str) -> Result<Option<DateTime<Utc>>, String> {
        self.opt_long(name)?
            .map(|us| {
                DateTime::from_timestamp_micros(us)
                    .ok_or_else(|| format!("field `{name}`: {us} µs is out of range"))
            })
            .transpose()
    }

    pub(super) fn symbol(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.take(name)? {
            Value::Null => Ok(None),
            Value::Enum(_, s) | Value::String(s) => Ok(Some(s)),
            other => Err(format!("field `{name}`: expected an enum, found {other:?}")),
        }
    }
}
