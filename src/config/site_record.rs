//! A site read back from its record on the sites topic (`sitemon producer` with
//! `kafka.sites_topic`): the definition `sitemon sites apply` wrote, checked field by field as a
//! `sites_file` item is, its `${VAR}` references resolved from this producer's environment.

use serde_yaml_ng::Value;

use super::Problem;
use super::interpolate::references;
use super::reader::{Env, Reader};
use super::sites::{OptionsPool, SiteDefaults, read_site};
use crate::domain::Site;

/// The only environment variables a site on the sites topic may take: anyone who can write the
/// topic could otherwise have a producer send its other settings (a Kafka password) to any URL.
pub const SITE_VARIABLES: &str = "SITE_";

/// The `${VAR}` references of a site definition (or any text of it) that are not `SITE_*`.
pub fn foreign_variables(text: &str) -> Vec<&str> {
    references(text).into_iter().filter(|n| !n.starts_with(SITE_VARIABLES)).collect()
}

/// Every string in a site's tree (keys included: a header's name is one).
fn strings<'v>(v: &'v Value, out: &mut Vec<&'v str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Sequence(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Mapping(m) => m.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        Value::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

/// The problem of a definition that refers to other variables.
pub fn foreign_variables_problem(names: &[&str]) -> String {
    format!(
        "`${{{}}}`: a site on the sites topic takes only `${{SITE_*}}` variables from a producer's environment (its \
         other settings are not for the topic's writers to read)",
        names.join("}`, `${")
    )
}

/// Reads site records one after another; consecutive sites with the same options share them.
#[derive(Default)]
pub struct SiteRecords {
    pool: OptionsPool,
}

impl SiteRecords {
    /// The site of the record keyed `name` whose value is `value`; every problem of it otherwise,
    /// each at its field. Nothing in a record can panic it: a value that is not a definition is
    /// a problem like any other.
    pub fn read(&mut self, name: &str, value: &[u8], env: Env) -> Result<Site, Vec<Problem>> {
        let tree: Value = serde_json::from_slice(value)
            .map_err(|e| vec![Problem::new("", format!("not a site definition (JSON): {e}"))])?;
        // The decoded strings, not the raw bytes: JSON can write `$` as `\u0024`.
        let mut texts = Vec::new();
        strings(&tree, &mut texts);
        let foreign: Vec<&str> = texts.iter().flat_map(|t| foreign_variables(t)).collect();
        if !foreign.is_empty() {
            return Err(vec![Problem::new("", foreign_variables_problem(&foreign))]);
        }
        // And whatever way a reference got past that, no other variable resolves.
        let only = |name: &str| if name.starts_with(SITE_VARIABLES) { env(name) } else { None };
        let mut r = Reader::new(&only);
        // `sites apply` wrote the applying config's `defaults:` into the definition.
        let site = read_site(&mut r, &tree, "", &SiteDefaults::default(), &mut self.pool);
        if let Some(site) = &site
            && site.id != name
        {
            r.problem("name", format!("the definition names `{}`, its record's key is `{name}`", site.id));
        }
        match site {
            Some(site) if r.problems.is_empty() => Ok(site),
            _ => Err(r.problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SITE_SHOP_TOKEN" => Some("t0ken".to_owned()),
            "KAFKA_PASSWORD" => Some("s3cret".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn a_definition_reads_as_the_site_it_describes_with_references_resolved() {
        let mut records = SiteRecords::default();
        let value = br#"{"name":"shop","url":"https://shop.test/","interval":"5s","timeout":"2s",
            "headers":{"Authorization":"Bearer ${SITE_SHOP_TOKEN}"},"max_redirects":3,"expected_status":[200,204]}"#;
        let site = records.read("shop", value, &env).unwrap();
        assert_eq!(site.id, "shop");
        assert_eq!(site.interval, std::time::Duration::from_secs(5));
        assert_eq!(site.max_redirects, 3);
        assert_eq!(site.headers[0].1.expose(), "Bearer t0ken");
    }

    #[test]
    fn a_bad_record_is_problems_not_a_panic() {
        let mut records = SiteRecords::default();
        for (name, value) in [
            ("x", &b"\xff\x00garbage"[..]),
            ("x", b"[1,2]"),
            ("x", br#"{"name":"x"}"#),
            ("x", br#"{"name":"y","url":"http://y.test/"}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","interval":"1s","timeout":"9s"}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","interval":"1000000y"}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","interval":"500ns","timeout":"1ns"}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","interval":"367days","timeout":"1s"}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","headers":{"Authorization":"${SITE_NOT_SET}"}}"#),
            ("x", br#"{"name":"x","url":"http://x.test/?k=${KAFKA_PASSWORD}"}"#),
            ("x", br#"{"name":"x","url":"http://x.test/?k=\u0024{KAFKA_PASSWORD}"}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","headers":{"X-A":"${SITE_","X-B":"${KAFKA_PASSWORD}"}}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","headers":{"X-\u0024{KAFKA_PASSWORD}":"1"}}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","headers":{"X":"${KAFKA_PASSWORD:-}"}}"#),
        ] {
            let problems = records.read(name, value, &env).unwrap_err();
            assert!(!problems.is_empty(), "{value:?}");
            assert!(problems.iter().all(|p| !p.message.contains("s3cret")), "{problems:?}");
        }
    }
}
