//! A site list for the sites topic (`sitemon sites apply|diff`): the file read and validated as
//! `config check` reads a `sites_file` (every problem at its file:line, duplicate names
//! included), each valid site kept with its definition as written — the config's `defaults:`
//! filled in, so that every producer reads it alike, and `${VAR}` references left for each
//! producer to resolve — and no credential written out in a header.

use std::path::Path;

use serde_yaml_ng::Value;

use super::load::TOP;
use super::reader::{Env, Reader};
use super::site_file::{item_path, read_sites_file};
use super::sites::{later_duplicates, read_defaults};
use super::{ConfigError, Problem, locate};

/// One site as the sites topic carries it: its name (the record's key) and its definition (the
/// record's value, JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SiteDefinition {
    pub name: String,
    pub definition: serde_json::Value,
}

/// Header names that carry credentials: their values must come from the environment.
const CREDENTIAL_HEADERS: &[&str] =
    &["authorization", "cookie", "token", "secret", "password", "api-key", "apikey"];

/// The sites of `list` (CSV or YAML, as a `sites_file`) with the `defaults:` of the config file
/// `config`; every problem of both at once.
pub fn read_site_list(config: &Path, list: &Path, env: Env) -> Result<Vec<SiteDefinition>, ConfigError> {
    let fail = |problems| ConfigError { file: config.to_owned(), problems };
    let text = std::fs::read_to_string(config)
        .map_err(|e| fail(vec![Problem::new("", format!("cannot read file: {e}"))]))?;
    let root: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| fail(vec![Problem::new("", format!("not valid YAML: {e}"))]))?;
    let mut r = Reader::new(env);
    let defaults = r.fields(&root, "", TOP).map(|top| read_defaults(&mut r, &top)).unwrap_or_default();
    let file = read_sites_file(&mut r, list, &defaults, true);
    let at = |j: usize, path: String, message: String| Problem {
        at: Some((file.lines[j] as usize, 0)),
        file: Some(list.to_owned()),
        ..Problem::new(path, message)
    };
    let mut problems = r.problems;
    for j in later_duplicates(&file.sites) {
        let path = format!("{}.name", item_path(file.items[j] as usize));
        problems.push(at(j, path, format!("duplicate site name `{}`", file.sites[j].id)));
    }
    for (j, tree) in file.trees.iter().enumerate() {
        for name in written_out_credentials(tree) {
            let path = format!("{}.headers.{name}", item_path(file.items[j] as usize));
            problems.push(at(
                j,
                path,
                "a credential written out would be on the sites topic for every reader of it: take it \
                 from the environment, e.g. `${SHOP_TOKEN}` (each producer resolves it)"
                    .to_owned(),
            ));
        }
    }
    if !problems.is_empty() {
        locate(config, &mut problems);
        return Err(fail(problems));
    }
    let fill = root.get("defaults");
    Ok(file
        .sites
        .iter()
        .zip(&file.trees)
        .map(|(site, tree)| SiteDefinition { name: site.id.clone(), definition: definition(tree, fill) })
        .collect())
}

/// The headers whose name says credential and whose value is written out (no `${VAR}`).
fn written_out_credentials(tree: &Value) -> Vec<String> {
    let Some(Value::Mapping(headers)) = tree.get("headers") else { return Vec::new() };
    headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str()?;
            let lower = name.to_ascii_lowercase();
            let credential = CREDENTIAL_HEADERS.iter().any(|c| lower.contains(c));
            (credential && !v.as_str().is_some_and(|v| v.contains("${"))).then(|| name.to_owned())
        })
        .collect()
}

/// The site's tree as JSON, with each `defaults:` entry it does not set itself.
fn definition(tree: &Value, defaults: Option<&Value>) -> serde_json::Value {
    let mut v = serde_json::to_value(tree).unwrap_or_default();
    if let (serde_json::Value::Object(site), Some(Value::Mapping(d))) = (&mut v, defaults) {
        for (k, dv) in d {
            if let Some(k) = k.as_str()
                && !site.contains_key(k)
            {
                site.insert(k.to_owned(), serde_json::to_value(dv).unwrap_or_default());
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_owned())
    }

    fn read(config: &str, name: &str, list: &str) -> Result<Vec<SiteDefinition>, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.yaml"), config).unwrap();
        std::fs::write(dir.path().join(name), list).unwrap();
        read_site_list(&dir.path().join("c.yaml"), &dir.path().join(name), &env)
    }

    #[test]
    fn definitions_carry_the_defaults_and_keep_references() {
        let sites = read(
            "defaults: {interval: 45s, down_after: 2}\n",
            "s.yaml",
            "- {name: a, url: 'http://a/', interval: 10s, headers: {Authorization: 'Bearer ${TOKEN}'}}\n\
             - {name: b, url: 'http://b/'}\n",
        )
        .unwrap();
        let a = &sites[0].definition;
        assert_eq!((a["interval"].as_str(), a["down_after"].as_u64()), (Some("10s"), Some(2)));
        assert_eq!(a["headers"]["Authorization"], "Bearer ${TOKEN}", "the reference, never its value");
        assert_eq!(sites[1].definition["interval"], "45s");
        assert!(!serde_json::to_string(&sites).unwrap_or_default().contains("s3cret"));
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
            "- {name: a, url: 'http://a/'}\n- {name: a, url: 'http://b/', headers: {X-Api-Key: k3y, Accept: '*/*'}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("duplicate site name `a`"), "{e}");
        assert!(e.contains("headers.X-Api-Key: a credential written out"), "{e}");
        assert!(!e.contains("Accept") && !e.contains("k3y"), "{e}");
    }
}
