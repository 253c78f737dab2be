//! Reads a parsed YAML tree field by field, recording every problem with its path instead of
//! stopping at the first one.

use std::time::Duration;

use serde_yaml_ng::Value;

use super::interpolate::interpolate;
use super::{Problem, Secret};

/// Resolves `${VAR}` references; shared by the threads that validate a large sites file.
pub type Env<'e> = &'e (dyn Fn(&str) -> Option<String> + Sync);

/// Collects problems while the config is read.
pub struct Reader<'e> {
    pub problems: Vec<Problem>,
    env: Env<'e>,
}

/// The keys of one YAML mapping, already checked against the allowed names.
pub struct Fields<'v> {
    path: String,
    entries: Vec<(&'v str, &'v Value)>,
}

impl<'v> Fields<'v> {
    /// The value of `key` and its path, if present and not null.
    pub fn get(&self, key: &str) -> Option<(&'v Value, String)> {
        self.entries.iter().find(|(k, v)| *k == key && !v.is_null()).map(|(_, v)| (*v, join(&self.path, key)))
    }
}

/// `path.key` (`key` at the top). Called for every field of every site: plain pushes, not the
/// formatting machinery, since a million-site list calls it millions of times.
/// `did you mean `x`? ` for the allowed name closest to a misspelt `key`, or nothing.
pub fn did_you_mean(allowed: &[&str], key: &str) -> String {
    allowed
        .iter()
        .map(|a| (strsim::jaro_winkler(a, key), a))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| format!("did you mean `{a}`? "))
        .unwrap_or_default()
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        return key.to_owned();
    }
    let mut joined = String::with_capacity(path.len() + 1 + key.len());
    joined.push_str(path);
    joined.push('.');
    joined.push_str(key);
    joined
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl<'e> Reader<'e> {
    pub fn new(env: Env<'e>) -> Self {
        Reader { problems: Vec::new(), env }
    }

    /// The environment this reader resolves `${VAR}` from.
    pub fn env(&self) -> Env<'e> {
        self.env
    }

    pub fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// A mapping whose keys must all be in `allowed`; unknown keys are reported.
    pub fn fields<'v>(&mut self, v: &'v Value, path: &str, allowed: &[&str]) -> Option<Fields<'v>> {
        let Value::Mapping(map) = v else {
            self.problem(path, format!("expected a mapping, found {}", kind(v)));
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, val) in map {
            let Some(k) = k.as_str() else {
                self.problem(path, format!("keys must be strings, found {}", kind(k)));
                continue;
            };
            if allowed.contains(&k) {
                entries.push((k, val));
            } else {
                let hint = did_you_mean(allowed, k);
                self.problem(
                    &join(path, k),
                    format!("unknown field; {hint}expected one of: {}", allowed.join(", ")),
                );
            }
        }
        Some(Fields { path: path.to_owned(), entries })
    }

    pub fn list<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v [Value]> {
        match v {
            Value::Sequence(items) => Some(items),
            other => {
                self.problem(path, format!("expected a list, found {}", kind(other)));
                None
            }
        }
    }

    /// A string scalar with `${VAR}` references resolved. Numbers and booleans are accepted as
    /// their text so that `port: 9092`-style values work.
    pub fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        let raw = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                self.problem(path, format!("expected a string, found {}", kind(other)));
                return None;
            }
        };
        match interpolate(&raw, self.env) {
            Ok(s) => Some(s),
            Err(missing) => {
                for name in missing {
                    self.problem(
                        path,
                        format!("environment variable `{name}` is not set (use ${{{name}:-default}} for a fallback)"),
                    );
                }
                None
            }
        }
    }

    /// A mapping of string keys to secret string values (`what` names the keys in messages);
    /// `check` may reject a key or value with a message, reported at that key's path.
    pub fn secret_map(
        &mut self,
        v: &Value,
        path: &str,
        what: &str,
        check: impl Fn(&str, &str) -> Result<(), String>,
    ) -> Option<Vec<(String, Secret)>> {
        let Value::Mapping(map) = v else {
            self.problem(path, format!("expected a mapping of {what} names to values"));
            return None;
        };
        let mut out = Vec::with_capacity(map.len());
        let mut ok = true;
        for (k, v) in map {
            let Some(name) = k.as_str() else {
                self.problem(path, format!("{what} names must be strings"));
                ok = false;
                continue;
            };
            let p = join(path, name);
            match self.string(v, &p).map(|value| (check(name, &value), value)) {
                Some((Ok(()), value)) => out.push((name.to_owned(), Secret::new(value))),
                Some((Err(msg), _)) => {
                    self.problem(&p, msg);
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub fn nonempty_string(&mut self, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        if s.trim().is_empty() {
            self.problem(path, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub fn uint(&mut self, v: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(_) => self.string(v, path)?.trim().parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.problem(path, format!("{n} is out of range {min}..={max}"));
                None
            }
            None => {
                self.problem(path, format!("expected a whole number from {min} to {max}"));
                None
            }
        }
    }

    pub fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            other => {
                self.problem(path, format!("expected true or false, found {}", kind(other)));
                None
            }
        }
    }

    /// A byte size: a whole number of bytes, or text such as `512 KiB`, `10MB`.
    pub fn byte_size(&mut self, v: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(_) => {
                let text = self.string(v, path)?;
                text.trim().parse::<bytesize::ByteSize>().ok().map(|b| b.as_u64())
            }
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.problem(path, format!("{n} bytes is out of range {min}..={max}"));
                None
            }
            None => {
                self.problem(path, "expected a size such as `1048576`, `512 KiB` or `10 MiB`");
                None
            }
        }
    }

    /// A positive human-readable duration such as `30s`, `5m`, `1h 30m`, `250ms`.
    pub fn duration(&mut self, v: &Value, path: &str) -> Option<Duration> {
        let text = match v {
            Value::Number(_) => {
                self.problem(path, "a duration needs a unit, e.g. `30s`, `5m`, `250ms`");
                return None;
            }
            _ => self.string(v, path)?,
        };
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => {
                self.problem(path, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                let hint = if text.trim_start().starts_with('-') {
                    "must be positive".to_owned()
                } else {
                    format!("`{text}` is not a duration ({e}); use e.g. `30s`, `5m`, `250ms`")
                };
                self.problem(path, hint);
                None
            }
        }
    }
}
