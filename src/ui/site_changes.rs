//! What `sitemon sites apply` and `sites diff` find and print: the sites a list adds to the sites
//! topic, removes from it and changes (with the fields that differ, never their values), and the
//! records that make the topic hold the list; what `sites list` prints of the topic.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write;

use crate::config::SiteDefinition;

/// Lines of each kind printed at most; the rest are counted.
const SHOWN: usize = 200;

/// A list against the topic's state.
#[derive(Debug, Default)]
pub struct SiteChanges<'a> {
    pub added: Vec<&'a SiteDefinition>,
    /// Each with the fields whose values differ (`(unreadable)` for a value that is not JSON).
    pub changed: Vec<(&'a SiteDefinition, Vec<String>)>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

impl<'a> SiteChanges<'a> {
    /// `current`: the topic's value per site name; `wanted`: the list, names distinct.
    pub fn between(current: &BTreeMap<String, Vec<u8>>, wanted: &'a [SiteDefinition]) -> Self {
        let mut c = SiteChanges::default();
        for w in wanted {
            match current.get(&w.name) {
                None => c.added.push(w),
                Some(bytes) => match serde_json::from_slice::<serde_json::Value>(bytes) {
                    Ok(now) if now == w.definition => c.unchanged += 1,
                    Ok(now) => c.changed.push((w, fields_differing(&now, &w.definition))),
                    Err(_) => c.changed.push((w, vec!["(unreadable)".to_owned()])),
                },
            }
        }
        let names: HashSet<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
        c.removed = current.keys().filter(|k| !names.contains(k.as_str())).cloned().collect();
        c.added.sort_by(|a, b| a.name.cmp(&b.name));
        c.changed.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        c
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// The records to publish: each added or changed site's definition, a tombstone for each
    /// removed one.
    pub fn records(&self) -> Vec<(String, Option<Vec<u8>>)> {
        let value = |d: &SiteDefinition| serde_json::to_vec(&d.definition).expect("JSON values serialize");
        let set = self.added.iter().copied().chain(self.changed.iter().map(|(d, _)| *d));
        set.map(|d| (d.name.clone(), Some(value(d))))
            .chain(self.removed.iter().map(|name| (name.clone(), None)))
            .collect()
    }

    /// `+ name`, `~ name: fields`, `- name`, then the counts.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let lines = |out: &mut String, mark: char, items: Vec<String>| {
            for item in items.iter().take(SHOWN) {
                let _ = writeln!(out, "{mark} {item}");
            }
            if items.len() > SHOWN {
                let _ = writeln!(out, "{mark} … and {} more", items.len() - SHOWN);
            }
        };
        lines(&mut out, '+', self.added.iter().map(|d| d.name.clone()).collect());
        lines(
            &mut out,
            '~',
            self.changed.iter().map(|(d, f)| format!("{}: {}", d.name, f.join(", "))).collect(),
        );
        lines(&mut out, '-', self.removed.clone());
        let _ = writeln!(
            out,
            "{} added, {} changed, {} removed, {} unchanged",
            self.added.len(),
            self.changed.len(),
            self.removed.len(),
            self.unchanged
        );
        out
    }
}

/// The top-level fields whose values differ between two definitions, by name.
fn fields_differing(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["(whole)".to_owned()] };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).cloned().collect()
}

/// The sites on the topic: name, URL and interval as defined, one line each, sorted by name.
pub fn sites_table(state: &BTreeMap<String, Vec<u8>>) -> String {
    let rows: Vec<[String; 3]> = state
        .iter()
        .map(|(name, bytes)| match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(d) => {
                let field =
                    |k: &str| d.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
                [
                    name.clone(),
                    field("url").unwrap_or_default(),
                    field("interval").unwrap_or_else(|| "-".to_owned()),
                ]
            }
            Err(_) => [name.clone(), "(unreadable)".to_owned(), String::new()],
        })
        .collect();
    let width =
        |i: usize, head: &str| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(head.len());
    let (w0, w1) = (width(0, "SITE"), width(1, "URL"));
    let mut out = format!("{:w0$}  {:w1$}  INTERVAL\n", "SITE", "URL");
    for r in &rows {
        let _ = writeln!(out, "{:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
    }
    let _ = writeln!(out, "{} sites", rows.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(name: &str, v: serde_json::Value) -> SiteDefinition {
        SiteDefinition { name: name.to_owned(), definition: v }
    }

    #[test]
    fn adds_changes_and_removes_only_what_differs() {
        let current: BTreeMap<String, Vec<u8>> = [
            ("a", json!({"name": "a", "url": "http://a/"})),
            ("b", json!({"name": "b", "url": "http://b/", "interval": "10s"})),
            ("c", json!({"name": "c", "url": "http://c/"})),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), serde_json::to_vec(&v).unwrap()))
        .chain([("d".to_owned(), b"not json".to_vec())])
        .collect();
        let wanted = [
            def("a", json!({"url": "http://a/", "name": "a"})),
            def("b", json!({"name": "b", "url": "http://b/", "interval": "20s", "headers": {"X": "${V}"}})),
            def("d", json!({"name": "d", "url": "http://d/"})),
            def("e", json!({"name": "e", "url": "http://e/"})),
        ];
        let c = SiteChanges::between(&current, &wanted);
        assert_eq!(
            c.render(),
            "+ e\n~ b: headers, interval\n~ d: (unreadable)\n- c\n1 added, 2 changed, 1 removed, 1 unchanged\n"
        );
        let records = c.records();
        let keys: Vec<(&str, bool)> = records.iter().map(|(k, v)| (k.as_str(), v.is_some())).collect();
        assert_eq!(keys, [("e", true), ("b", true), ("d", true), ("c", false)], "a tombstone for c");
        assert!(SiteChanges::between(&BTreeMap::new(), &[]).is_empty());
    }

    #[test]
    fn long_lists_are_counted_past_the_shown_lines() {
        let wanted: Vec<SiteDefinition> =
            (0..SHOWN + 5).map(|i| def(&format!("s{i:04}"), json!({}))).collect();
        let text = SiteChanges::between(&BTreeMap::new(), &wanted).render();
        assert!(text.contains("+ … and 5 more\n") && text.lines().count() == SHOWN + 2, "{text}");
    }
}
