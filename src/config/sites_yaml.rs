//! A YAML sites file read event by event (yaml-rust2's parser): the top level is a list, and
//! each item's tree is built, read into a [`crate::domain::Site`] and dropped before the next, so
//! a million-site file never stands in memory as a document.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use serde_yaml_ng::{Mapping, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::reader::join;
use super::site_file::Sink;

/// The characters of a reader, decoded line by line; an I/O or UTF-8 error ends the stream and
/// is kept for the report.
struct Chars<R> {
    reader: R,
    /// Before the first character of the file.
    first: bool,
    line: String,
    pos: usize,
    error: Option<std::io::Error>,
}

impl<R: BufRead> Iterator for Chars<R> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        loop {
            if let Some(c) = self.line[self.pos..].chars().next() {
                self.pos += c.len_utf8();
                // A byte-order mark is not content (yaml-rust2 would read it as such).
                if c == '\u{feff}' && self.pos == c.len_utf8() && self.first {
                    self.first = false;
                    continue;
                }
                self.first = false;
                return Some(c);
            }
            self.line.clear();
            self.pos = 0;
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            }
        }
    }
}

enum Frame {
    Seq { path: String, items: Vec<Value>, anchor: usize },
    Map { path: String, map: Mapping, key: Option<Value>, anchor: usize },
}

/// Builds one item's tree from events, with the place of every path in it.
#[derive(Default)]
struct Item {
    stack: Vec<Frame>,
    places: HashMap<String, (usize, usize)>,
    anchors: HashMap<usize, Value>,
    /// Paths of keys given twice in a mapping of this site.
    repeated: Vec<String>,
    /// Nodes copied by aliases into this site.
    aliased: usize,
}

fn place(mark: Marker) -> (usize, usize) {
    (mark.line(), mark.col() + 1)
}

impl Item {
    /// The path of the node that starts now (its key's place is recorded when the key is read).
    fn next_path(&mut self, base: &str, mark: Marker) -> Option<String> {
        match self.stack.last() {
            None => Some(base.to_owned()),
            Some(Frame::Seq { path, items, .. }) => {
                let p = format!("{path}[{}]", items.len());
                self.places.entry(p.clone()).or_insert(place(mark));
                Some(p)
            }
            Some(Frame::Map { path, key: Some(k), .. }) => Some(join(path, k.as_str().unwrap_or("?"))),
            Some(Frame::Map { .. }) => None,
        }
    }

    /// Adds a finished node to its parent; returns it when it is the item itself.
    fn attach(&mut self, v: Value, anchor: usize, mark: Marker) -> Option<Value> {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
        match self.stack.last_mut() {
            None => return Some(v),
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map { path, map, key, .. }) => match key.take() {
                Some(k) => {
                    let shown = join(path, k.as_str().unwrap_or("?"));
                    if map.insert(k, v).is_some() {
                        self.repeated.push(shown);
                    }
                }
                None => {
                    let at = place(mark);
                    self.places.entry(path.clone()).or_insert(at);
                    if let Some(k) = v.as_str() {
                        self.places.entry(join(path, k)).or_insert(at);
                    }
                    *key = Some(v);
                }
            },
        }
        None
    }

    /// The place of `path`, or of its nearest ancestor in the item.
    fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(at) = self.places.get(p) {
                return Some(*at);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// A scalar as serde_yaml_ng resolves it for an inline `sites:` list (its
/// `visit_untagged_scalar`: null, booleans, integers with `0x`/`0o`/`0b`, floats, and digits with
/// a leading zero kept as text), so a site reads the same in a sites file; quoted and block
/// scalars, and `!!str`, are strings.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if style != TScalarStyle::Plain || tag.is_some_and(|t| t.suffix == "str" || t.suffix.ends_with(":str")) {
        return Value::String(text);
    }
    let t = text.as_str();
    if t.is_empty() || matches!(t, "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    match t {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = unsigned(t) {
        return Value::Number(Number::from(n));
    }
    if let Some(n) = negative(t) {
        return Value::Number(Number::from(n));
    }
    if !leading_zero_digits(t)
        && let Some(f) = float(t)
    {
        return Value::Number(Number::from(f));
    }
    Value::String(text)
}

/// `0123`, `-007`: text in YAML 1.2, not a number.
fn leading_zero_digits(t: &str) -> bool {
    let s = t.strip_prefix(['-', '+']).unwrap_or(t);
    s.len() > 1 && s.starts_with('0') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn radix_prefixed(s: &str) -> Option<(&str, u32)> {
    [("0x", 16), ("0o", 8), ("0b", 2)].into_iter().find_map(|(p, r)| s.strip_prefix(p).map(|rest| (rest, r)))
}

fn unsigned(t: &str) -> Option<u64> {
    let u = t.strip_prefix('+').unwrap_or(t);
    if let Some((rest, radix)) = radix_prefixed(u) {
        if rest.starts_with(['+', '-']) {
            return None;
        }
        if let Ok(n) = u64::from_str_radix(rest, radix) {
            return Some(n);
        }
    }
    if u.starts_with(['+', '-']) || leading_zero_digits(t) {
        return None;
    }
    u.parse::<u64>().ok()
}

fn negative(t: &str) -> Option<i64> {
    if let Some((rest, radix)) = t.strip_prefix('-').and_then(radix_prefixed)
        && let Ok(n) = i64::from_str_radix(&format!("-{rest}"), radix)
    {
        return Some(n);
    }
    if leading_zero_digits(t) {
        return None;
    }
    t.parse::<i64>().ok()
}

fn float(t: &str) -> Option<f64> {
    let u = match t.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => t,
    };
    match (u, t) {
        (".inf" | ".Inf" | ".INF", _) => Some(f64::INFINITY),
        (_, "-.inf" | "-.Inf" | "-.INF") => Some(f64::NEG_INFINITY),
        (_, ".nan" | ".NaN" | ".NAN") => Some(f64::NAN),
        _ => u.parse::<f64>().ok().filter(|f| f.is_finite()),
    }
}

/// Deepest nesting within one site (serde_yaml_ng stops at 128), and most nodes that aliases may
/// copy into one site: a small hostile file cannot take the producer's memory, even on reload.
const MAX_DEPTH: usize = 32;
const MAX_ALIAS_NODES: usize = 10_000;

fn nodes(v: &Value) -> usize {
    match v {
        Value::Sequence(items) => 1 + items.iter().map(nodes).sum::<usize>(),
        Value::Mapping(m) => 1 + m.iter().map(|(k, v)| nodes(k) + nodes(v)).sum::<usize>(),
        Value::Tagged(t) => 1 + nodes(&t.value),
        _ => 1,
    }
}

/// Reads the file's top-level list, handing each item to `sink`.
pub(super) fn read(sink: &mut Sink, file: impl Read) {
    let mut chars =
        Chars { reader: BufReader::new(file), first: true, line: String::new(), pos: 0, error: None };
    let mut parser = Parser::new(&mut chars);
    let mut depth = 0usize; // 0: before the list, 1: in the list, 2: after it
    let mut item = Item::default();
    let mut item_line = 0;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(e) => e,
            Err(e) => {
                let m = e.marker();
                sink.problem("", Some((m.line(), m.col() + 1)), format!("not valid YAML: {}", e.info()));
                break;
            }
        };
        match (depth, event) {
            (_, Event::StreamEnd) => break,
            (2, Event::DocumentStart) => {
                sink.problem(
                    "",
                    Some((mark.line(), 0)),
                    "a sites file holds one YAML document: one list of sites",
                );
                return;
            }
            (_, Event::StreamStart | Event::DocumentStart | Event::DocumentEnd | Event::Nothing) => {}
            (0, Event::SequenceStart(..)) => depth = 1,
            (0, _) => {
                sink.problem(
                    "",
                    Some((mark.line(), 0)),
                    "expected a list of sites at the top level (`- name: …`)",
                );
                return;
            }
            (1, Event::SequenceEnd) if item.stack.is_empty() => depth = 2,
            (1, event) => {
                if item.stack.is_empty() {
                    item_line = mark.line();
                }
                let base = super::site_file::item_path(sink.count);
                let done = match event {
                    Event::Scalar(text, style, anchor, tag) => {
                        let path = item.next_path(&base, mark);
                        if let Some(p) = path {
                            item.places.entry(p).or_insert(place(mark));
                        }
                        item.attach(scalar(text, style, tag.as_ref()), anchor, mark)
                    }
                    Event::Alias(id) => {
                        let _ = item.next_path(&base, mark);
                        let v = item.anchors.get(&id).cloned().unwrap_or(Value::Null);
                        item.aliased += nodes(&v);
                        if item.aliased > MAX_ALIAS_NODES {
                            sink.problem(
                                &base,
                                Some(place(mark)),
                                format!("aliases copy more than {MAX_ALIAS_NODES} nodes into one site"),
                            );
                            return;
                        }
                        item.attach(v, 0, mark)
                    }
                    Event::SequenceStart(anchor, _) => {
                        let path = item.next_path(&base, mark).unwrap_or_default();
                        item.places.entry(path.clone()).or_insert(place(mark));
                        item.stack.push(Frame::Seq { path, items: Vec::new(), anchor });
                        None
                    }
                    Event::MappingStart(anchor, _) => {
                        let path = item.next_path(&base, mark).unwrap_or_default();
                        item.stack.push(Frame::Map { path, map: Mapping::new(), key: None, anchor });
                        None
                    }
                    Event::SequenceEnd | Event::MappingEnd => match item.stack.pop() {
                        Some(Frame::Seq { items, anchor, .. }) => {
                            item.attach(Value::Sequence(items), anchor, mark)
                        }
                        Some(Frame::Map { map, anchor, .. }) => {
                            item.attach(Value::Mapping(map), anchor, mark)
                        }
                        None => None,
                    },
                    _ => None,
                };
                if item.stack.len() > MAX_DEPTH {
                    sink.problem(
                        &base,
                        Some(place(mark)),
                        format!("nested more than {MAX_DEPTH} levels deep"),
                    );
                    return;
                }
                if let Some(v) = done {
                    for p in std::mem::take(&mut item.repeated) {
                        let at = item.find(&p);
                        sink.problem(&p, at, "given twice; give each option once");
                    }
                    sink.site(&v, item_line, |p| item.find(p));
                    item.places.clear();
                    item.aliased = 0;
                }
            }
            (_, _) => {}
        }
    }
    drop(parser);
    if let Some(e) = chars.error.take() {
        sink.problem("", None, format!("cannot read the sites file: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_yaml_ng::Value;

    use crate::config::{Sites, parse, parse_with};

    /// Plain scalars resolve as serde_yaml_ng resolves them: compared with it directly.
    #[test]
    fn scalars_resolve_like_serde_yaml_ng() {
        for t in [
            "00123", "123", "-7", "+7", "0x1F", "-0x10", "+0x10", "0o17", "0b11", "-0b11", "1e3", "1e400",
            ".inf", "-.Inf", ".nan", "1.5", "-0", "007", "true", "False", "TRUE", "yes", "~", "null",
            "site-1", "100s", "0x", "0xZZ", "+-1", "1_000", "12:30", ".5", "5.",
        ] {
            let ours = super::scalar(t.to_owned(), yaml_rust2::scanner::TScalarStyle::Plain, None);
            let theirs: Value = serde_yaml_ng::from_str(t).unwrap();
            let same = match (&ours, &theirs) {
                (Value::Number(a), Value::Number(b)) if a.is_nan() => b.is_nan(),
                _ => ours == theirs,
            };
            assert!(same, "{t:?}: ours {ours:?}, serde_yaml_ng {theirs:?}");
        }
    }

    fn file_and_inline(items: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.yaml"), items).unwrap();
        let from_file = parse_with("sites_file: s.yaml\n", &dir.path().join("m.yaml"), &|_| None, Sites::All);
        let indented: String = items.lines().map(|l| format!("  {l}\n")).collect();
        let inline = parse(&format!("sites:\n{indented}"), Path::new("m.yaml"), &|_| None);
        let show = |r: Result<crate::config::Config, crate::config::ConfigError>| match r {
            Ok(c) => format!(
                "{:?}",
                c.sites.iter().map(|s| (&s.id, s.url.as_str(), s.interval)).collect::<Vec<_>>()
            ),
            Err(e) => format!(
                "error: {}",
                e.problems
                    .iter()
                    .map(|p| p.path.replace("sites_file", "sites"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        (show(from_file), show(inline))
    }

    #[test]
    fn a_site_reads_the_same_in_a_file_and_inline() {
        for items in [
            "- {name: 00123, url: 'http://a/'}\n",
            "- {name: 0x1F, url: 'http://a/'}\n",
            "- {name: 1e3, url: 'http://a/'}\n",
            "- {name: true, url: 'http://a/'}\n",
            "- &a {name: a, url: 'http://a/', interval: 5s}\n- {name: b, url: 'http://b/', interval: 10s}\n",
            "- {name: a, url: 'http://a/', headers: &h {X-Id: 0042}}\n- {name: b, url: 'http://b/', headers: *h}\n",
            "- {name: a, url: 'http://a/', interval: 30}\n",
        ] {
            let (file, inline) = file_and_inline(items);
            assert_eq!(file, inline, "{items}");
        }
    }

    #[test]
    fn repeated_keys_documents_boms_and_bombs() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("m.yaml");
        let read = |text: &str| {
            std::fs::write(dir.path().join("s.yaml"), text).unwrap();
            parse_with("sites_file: s.yaml\n", &main, &|_| None, Sites::All)
        };
        let e = read("- name: a\n  url: http://a/\n  url: http://b/\n").unwrap_err();
        assert_eq!(e.problems[0].path, "sites_file[0].url", "{e}");
        assert!(e.problems[0].message.contains("given twice"), "{e}");
        let e = read("- {name: a, url: 'http://a/'}\n---\n- {name: b, url: 'http://b/'}\n").unwrap_err();
        assert!(e.to_string().contains("one YAML document"), "{e}");
        assert_eq!(
            read("\u{feff}- {name: a, url: 'http://a/'}\n").unwrap().sites.len(),
            1,
            "a BOM is not content"
        );
        let mut laughs = String::from("- &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].iter().enumerate() {
            let prev = ["a", "b", "c", "d", "e", "f", "g", "h"][i];
            laughs.push_str(&format!("- &{name} [{}]\n", vec![format!("*{prev}"); 10].join(", ")));
        }
        let e = read(&laughs).unwrap_err();
        assert!(e.to_string().contains("aliases copy more than"), "{e}");
        let deep = format!("- {}x{}\n", "[".repeat(40), "]".repeat(40));
        let e = read(&deep).unwrap_err();
        assert!(e.to_string().contains("nested more than"), "{e}");
        // Deeper still, the YAML parser's own limit answers first.
        let deeper = format!("- {}x{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(read(&deeper).unwrap_err().to_string().contains("not valid YAML"));
    }
}
