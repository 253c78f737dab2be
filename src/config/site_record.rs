//! A site read back from its record on the sites topic (`sitemon producer` with
//! `kafka.sites_topic`): the definition `sitemon sites apply` wrote, checked field by field as a
//! `sites_file` item is, its `${VAR}` references resolved from this producer's environment.

use serde_yaml_ng::Value;

use super::Problem;
use super::reader::{Env, Reader};
use super::sites::{OptionsPool, SiteDefaults, read_site};
use crate::domain::Site;

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
        let mut r = Reader::new(env);
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
        (name == "SHOP_TOKEN").then(|| "t0ken".to_owned())
    }

    #[test]
    fn a_definition_reads_as_the_site_it_describes_with_references_resolved() {
        let mut records = SiteRecords::default();
        let value = br#"{"name":"shop","url":"https://shop.test/","interval":"5s","timeout":"2s",
            "headers":{"Authorization":"Bearer ${SHOP_TOKEN}"},"max_redirects":3,"expected_status":[200,204]}"#;
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
            ("x", br#"{"name":"x","url":"http://x.test/","interval":"367days","timeout":"1s"}"#),
            ("x", br#"{"name":"x","url":"http://x.test/","headers":{"Authorization":"${NOT_SET}"}}"#),
        ] {
            let problems = records.read(name, value, &env).unwrap_err();
            assert!(!problems.is_empty(), "{value:?}");
        }
    }
}
