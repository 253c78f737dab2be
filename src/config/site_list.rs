//! A site list for the sites topic (`sitemon sites apply|diff`): the file read and validated as
//! `config check` reads a `sites_file` (every problem at its file:line, duplicate names
//! included), each valid site kept with its definition as written — the config's `defaults:`
//! filled in, so that every producer reads it alike, and `${VAR}` references left for each
//! producer to resolve — and no credential written out in a header.

use std::path::Path;

use serde_yaml_ng::Value;

use super::interpolate::interpolate;
use super::load::TOP;
use super::reader::Reader;
use super::site_file::{item_path, read_sites_file};
use super::site_record::{foreign_variables, foreign_variables_problem};
use super::sites::{later_duplicates, read_defaults};
use super::{ConfigError, Problem, locate};

/// One site as the sites topic carries it: its name (the record's key) and its definition (the
/// record's value, JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SiteDefinition {
    pub name: String,
    pub definition: serde_json::Value,
}

/// Words in a header name that say it carries a credential: its value must come from the
/// environment.
const CREDENTIAL_WORDS: &[&str] =
    &["auth", "cookie", "token", "secret", "password", "key", "session", "signature", "credential"];
/// Fields whose value is a number, whatever the file wrote: a CSV cell is text.
const NUMBERS: &[&str] =
    &["max_redirects", "max_body_bytes", "down_after", "up_after", "quorum", "cert_warn_days"];

/// The sites of `list` (CSV or YAML, as a `sites_file`) with the `defaults:` of the config file
/// `config`; every problem of the list at once. A `${VAR}` this environment does not set is
/// checked with a stand-in value: each producer resolves it from its own environment, not the
/// one applying the list (a CI job needs no production secret).
pub fn read_site_list(config: &Path, list: &Path) -> Result<Vec<SiteDefinition>, ConfigError> {
    let fail = |problems| ConfigError { file: config.to_owned(), problems };
    let text = std::fs::read_to_string(config)
        .map_err(|e| fail(vec![Problem::new("", format!("cannot read file: {e}"))]))?;
    let root: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| fail(vec![Problem::new("", format!("not valid YAML: {e}"))]))?;
    let placeholder =
        |name: &str| Some(std::env::var(name).unwrap_or_else(|_| "sitemon-placeholder".to_owned()));
    let mut r = Reader::new(&placeholder);
    let defaults = r.fields(&root, "", TOP).map(|top| read_defaults(&mut r, &top)).unwrap_or_default();
    let file = read_sites_file(&mut r, list, &defaults, true);
    let at = |line: u32, path: String, message: String| Problem {
        at: Some((line as usize, 0)),
        file: Some(list.to_owned()),
        ..Problem::new(path, message)
    };
    let mut problems = r.problems;
    for j in later_duplicates(&file.sites) {
        let i = file.items[j] as usize;
        let path = format!("{}.name", item_path(i));
        problems.push(at(file.trees[i].0, path, format!("duplicate site name `{}`", file.sites[j].id)));
    }
    for (i, (line, tree)) in file.trees.iter().enumerate() {
        if tree.get("name").and_then(Value::as_str).is_some_and(|n| n.contains('$')) {
            let message = "a site's name is its key on the sites topic: write it out, without `${VAR}`";
            problems.push(at(*line, format!("{}.name", item_path(i)), message.to_owned()));
        }
        for name in written_out_credentials(tree) {
            let path = format!("{}.headers.{name}", item_path(i));
            problems.push(at(
                *line,
                path,
                "a credential written out would be on the sites topic for every reader of it: take \
                 it from the environment, e.g. `Bearer ${SITE_SHOP_TOKEN}` (each producer resolves it; no \
                 default)"
                    .to_owned(),
            ));
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p.at);
        locate(config, &mut problems);
        return Err(fail(problems));
    }
    let fill = root.get("defaults");
    let definitions: Vec<SiteDefinition> = file
        .sites
        .iter()
        .zip(&file.items)
        .map(|(site, &i)| SiteDefinition {
            name: site.id.clone(),
            definition: definition(&file.trees[i as usize].1, fill),
        })
        .collect();
    // What producers will read, the config's `defaults:` included.
    for (d, &i) in definitions.iter().zip(&file.items) {
        let foreign = foreign_in(&d.definition);
        if !foreign.is_empty() {
            problems.push(at(
                file.trees[i as usize].0,
                item_path(i as usize),
                foreign_variables_problem(&foreign),
            ));
        }
    }
    if !problems.is_empty() {
        locate(config, &mut problems);
        return Err(fail(problems));
    }
    Ok(definitions)
}

/// The references to variables other than `SITE_*` in a definition, keys included.
fn foreign_in(definition: &serde_json::Value) -> Vec<&str> {
    let mut texts = Vec::new();
    json_strings(definition, &mut texts);
    texts.into_iter().flat_map(foreign_variables).collect()
}

/// Every string of a definition, keys included.
fn json_strings<'v>(v: &'v serde_json::Value, out: &mut Vec<&'v str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|i| json_strings(i, out)),
        serde_json::Value::Object(m) => m.iter().for_each(|(k, v)| {
            out.push(k);
            json_strings(v, out);
        }),
        _ => {}
    }
}

/// The headers whose name says credential and whose value is not taken from the environment:
/// it must hold a `${VAR}` reference (without a default), and besides references at most an
/// authorization scheme (`Bearer`, `Basic`, …).
fn written_out_credentials(tree: &Value) -> Vec<String> {
    let Some(Value::Mapping(headers)) = tree.get("headers") else { return Vec::new() };
    headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str()?;
            let lower = name.to_ascii_lowercase();
            let credential = CREDENTIAL_WORDS.iter().any(|c| lower.contains(c));
            (credential && !from_environment(v.as_str().unwrap_or(""))).then(|| name.to_owned())
        })
        .collect()
}

/// The value is one or more `${VAR}` references with at most a scheme word before them (a
/// reference's default counts as written out).
fn from_environment(value: &str) -> bool {
    const SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "bot", "apikey", "key"];
    let references = std::cell::Cell::new(0);
    let count = |_: &str| {
        references.set(references.get() + 1);
        Some(String::new())
    };
    let Ok(literal) = interpolate(value, &count) else { return false };
    let words: Vec<&str> = literal.split_whitespace().collect();
    references.get() > 0
        && match words.as_slice() {
            [] => true,
            [scheme] => SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()),
            _ => false,
        }
}

/// The site's tree as JSON, with each `defaults:` entry it does not set itself (a null counts as
/// not set, as it does for the check), numbers as numbers whether a CSV cell or YAML wrote them.
fn definition(tree: &Value, defaults: Option<&Value>) -> serde_json::Value {
    let mut v = json(tree);
    if let serde_json::Value::Object(site) = &mut v {
        if let Some(Value::Mapping(d)) = defaults {
            for (k, dv) in d {
                if let Some(k) = k.as_str()
                    && !site.contains_key(k)
                {
                    site.insert(k.to_owned(), json(dv));
                }
            }
        }
        for field in NUMBERS {
            if let Some(n) =
                site.get(*field).and_then(|v| v.as_str()).and_then(|t| t.trim().parse::<u64>().ok())
            {
                site.insert((*field).to_owned(), n.into());
            }
        }
        if let Some(serde_json::Value::Array(codes)) = site.get_mut("expected_status") {
            for c in codes.iter_mut() {
                if let Some(n) = c.as_str().and_then(|t| t.trim().parse::<u64>().ok()) {
                    *c = n.into();
                }
            }
        }
    }
    v
}

/// A YAML value as JSON: mappings without their null entries, non-finite numbers as their YAML
/// text (JSON has none), tags dropped.
fn json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => u.into(),
            (None, Some(i), _) => i.into(),
            (None, None, Some(f)) => {
                serde_json::Number::from_f64(f).map_or_else(|| J::String(n.to_string()), J::Number)
            }
            _ => J::String(n.to_string()),
        },
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(items) => J::Array(items.iter().map(json).collect()),
        Value::Mapping(m) => J::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.as_str().map_or_else(|| json(k).to_string(), str::to_owned), json(v)))
                .collect(),
        ),
        Value::Tagged(t) => json(&t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(config: &str, name: &str, list: &str) -> Result<Vec<SiteDefinition>, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.yaml"), config).unwrap();
        std::fs::write(dir.path().join(name), list).unwrap();
        read_site_list(&dir.path().join("c.yaml"), &dir.path().join(name))
    }

    #[test]
    fn what_producers_read_is_checked_for_other_variables_the_configs_defaults_included() {
        // `defaults:` are filled in as written: a reference there reaches every definition.
        let tree: Value = serde_yaml_ng::from_str("{name: a, url: 'http://a/'}").unwrap();
        let fill: Value = serde_yaml_ng::from_str("{interval: '${CHECK_INTERVAL:-30s}'}").unwrap();
        let d = definition(&tree, Some(&fill));
        assert_eq!(foreign_in(&d), ["CHECK_INTERVAL"]);
        let own: Value = serde_yaml_ng::from_str(
            "{name: b, url: 'http://b/', interval: 1m, headers: {'X-${K}': '${SITE_B}'}}",
        )
        .unwrap();
        assert_eq!(
            foreign_in(&definition(&own, Some(&fill))),
            ["K"],
            "keys are read too; the site's own interval stays"
        );
    }

    #[test]
    fn a_site_may_take_only_site_variables_from_the_producers_environment() {
        let e = read(
            "region: x\n",
            "l.yaml",
            "- {name: a, url: 'http://a/?k=${KAFKA_PASSWORD}'}\n- {name: b, url: 'http://b/', headers: {X-Y: '${SITE_B}', X-Z: '${HOME:-x}'}}\n- {name: c, url: 'http://c/$${NOT_A_REF}'}\n",
        )
        .unwrap_err();
        let found: Vec<(&str, &str)> =
            e.problems.iter().map(|p| (p.path.as_str(), p.message.as_str())).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].0 == "sites_file[0]" && found[0].1.contains("`${KAFKA_PASSWORD}`"), "{found:?}");
        assert!(found[1].0 == "sites_file[1]" && found[1].1.contains("`${HOME}`"), "{found:?}");
    }

    #[test]
    fn definitions_carry_the_defaults_and_keep_references() {
        let sites = read(
            "defaults: {interval: 45s, down_after: 2}\n",
            "s.yaml",
            "- {name: a, url: 'http://a/', interval: 10s, headers: {Authorization: 'Bearer ${SITE_TEST_UNSET}'}}\n\
             - {name: b, url: 'http://b/', interval: ~, expected_status: [200, 204]}\n",
        )
        .unwrap();
        let a = &sites[0].definition;
        assert_eq!((a["interval"].as_str(), a["down_after"].as_u64()), (Some("10s"), Some(2)));
        assert_eq!(a["headers"]["Authorization"], "Bearer ${SITE_TEST_UNSET}", "the reference, unresolved");
        assert_eq!(sites[1].definition["interval"], "45s", "a null takes the default, as in the check");
        // The same sites from a CSV file: the same definitions.
        let csv = read(
            "defaults: {interval: 45s, down_after: 2}\n",
            "s.csv",
            "name,url,interval,headers.Authorization,expected_status\n\
             a,http://a/,10s,Bearer ${SITE_TEST_UNSET},\nb,http://b/,,,200|204\n",
        )
        .unwrap();
        assert_eq!(csv, sites);
    }

    #[test]
    fn every_problem_at_its_line_credentials_and_duplicates_included() {
        let e = read(
            "sites: []\n",
            "s.csv",
            "name,url,interval\na,http://a/,10s\nb,notaurl,10s\na,http://c/,5q\nd,http://d/,10s\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("s.csv:3") && e.contains("s.csv:4"), "{e}");
        let e = read(
            "sites: []\n",
            "s.yaml",
            "- {name: a, url: 'http://a/'}\n- {name: a, url: notaurl, headers: {X-Api-Key: k3y, Accept: '*/*'}}\n\
             - {name: 'c-${R}', url: 'http://c/'}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate site name `a`") || e.contains("sites_file[1].url"), "{e}");
        assert!(e.contains("s.yaml:2: sites_file[1].headers.X-Api-Key: a credential written out"), "{e}");
        assert!(e.contains("s.yaml:3: sites_file[2].name: a site's name is its key"), "{e}");
        assert!(!e.contains("Accept") && !e.contains("k3y"), "{e}");
    }

    #[test]
    fn a_credential_comes_from_the_environment_or_is_refused() {
        for ok in ["${T}", "Bearer ${T}", "basic ${U}", "${A}${B}"] {
            assert!(from_environment(ok), "{ok}");
        }
        for refused in
            ["abc", "Bearer abc", "Bearer abc ${X:-}", "${UNSET:-s3cret}", "s3cret $${x}", "", "x ${T}"]
        {
            assert!(!from_environment(refused), "{refused}");
        }
        let tree: Value = serde_yaml_ng::from_str(
            "headers: {X-Auth: abc, X-Api_Key: '${K}', Cookie: 'sid=1', Accept: json}",
        )
        .unwrap();
        assert_eq!(written_out_credentials(&tree), ["X-Auth", "Cookie"]);
    }
}
