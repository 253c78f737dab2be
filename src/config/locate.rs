//! Finds where a config path such as `sites[3].interval` stands in the YAML text (line and
//! column), so that every problem can point at its place in the file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::reader::join;

/// Line and column (both 1-based) of every node by its config path: the key's place for a
/// mapping value, the item's place for a list item.
pub struct Locations(HashMap<String, (usize, usize)>);

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    found: HashMap<String, (usize, usize)>,
}

impl Walker {
    /// The path of a node starting here; `None` for a mapping key (recorded, not descended).
    fn node_path(&mut self, key_text: Option<&str>, mark: Marker) -> Option<String> {
        let at = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = key_text.unwrap_or("?").to_owned();
                    // A mapping stands where its first key does.
                    self.found.entry(path.clone()).or_insert(at);
                    self.found.entry(join(path, &k)).or_insert(at);
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let at = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(text, ..) => {
                if let Some(p) = self.node_path(Some(&text), mark) {
                    self.found.entry(p).or_insert(at);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.node_path(None, mark) {
                    self.found.entry(p).or_insert(at);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let path = self.node_path(None, mark).unwrap_or_default();
                if !is_map {
                    self.found.entry(path.clone()).or_insert(at);
                }
                self.stack.push(if is_map {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Locations {
    pub fn of(text: &str) -> Locations {
        let mut w = Walker::default();
        // A document that does not parse has no locations beyond what the YAML error says.
        let _ = Parser::new_from_str(text).load(&mut w, false);
        Locations(w.found)
    }

    /// The place of `path`, or of its nearest ancestor that is in the file.
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(at) = self.0.get(p) {
                return Some(*at);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_paths() {
        let text = "region: eu\nsites:\n  - name: a\n    url: http://x/\n  - {name: b, interval: 5s}\nkafka:\n  topic: t\n";
        let l = Locations::of(text);
        assert_eq!(l.find("region"), Some((1, 1)));
        assert_eq!(l.find("sites[0].url"), Some((4, 5)));
        assert_eq!(l.find("sites[1]"), Some((5, 6)));
        assert_eq!(l.find("sites[1].interval"), Some((5, 15)));
        assert_eq!(l.find("kafka.topic"), Some((7, 3)));
        // Missing fields point at the nearest place that exists.
        assert_eq!(l.find("sites[0].timeout"), Some((3, 5)));
        assert_eq!(l.find("kafka"), Some((6, 1)));
    }
}
