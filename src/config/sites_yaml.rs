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
                    map.insert(k, v);
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

/// A plain scalar resolved as YAML 1.2's core schema does (as serde_yaml_ng does for `sites:`);
/// quoted and block scalars, and `!!str`, are strings.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if style != TScalarStyle::Plain || tag.is_some_and(|t| t.suffix == "str" || t.suffix.ends_with(":str")) {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        t => {
            if let Ok(n) = t.parse::<u64>() {
                Value::Number(Number::from(n))
            } else if let Ok(n) = t.parse::<i64>() {
                Value::Number(Number::from(n))
            } else if let Some(n) = t.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()) {
                Value::Number(Number::from(n))
            } else if let Some(n) = t.strip_prefix("0o").and_then(|o| u64::from_str_radix(o, 8).ok()) {
                Value::Number(Number::from(n))
            } else if t.bytes().any(|b| b.is_ascii_digit())
                && let Ok(f) = t.parse::<f64>()
            {
                Value::Number(Number::from(f))
            } else {
                Value::String(text)
            }
        }
    }
}

/// Reads the file's top-level list, handing each item to `sink`.
pub(super) fn read(sink: &mut Sink, file: impl Read) {
    let mut chars = Chars { reader: BufReader::new(file), line: String::new(), pos: 0, error: None };
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
                if let Some(v) = done {
                    sink.site(&v, item_line, |p| item.find(p));
                    item.places.clear();
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
