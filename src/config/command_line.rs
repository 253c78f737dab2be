//! A site given on the command line (`sitemon check`): validated by the same rules as a site of
//! a config file, its problems named by argument and flag rather than by a line of a document
//! nobody wrote.

use std::path::Path;

use super::{COMMAND_LINE, ConfigError, parse};
use crate::domain::Site;

/// The site of `sitemon check URL [--method] [--timeout] [--pattern]`, built as a one-site config
/// so that it is validated like any other site; its problems name the argument or flag.
pub fn command_line_site(
    url: &str,
    method: &str,
    timeout: &str,
    pattern: Option<&str>,
) -> Result<Site, ConfigError> {
    let mut site = serde_yaml_ng::Mapping::new();
    site.insert("name".into(), "check".into());
    site.insert("url".into(), url.into());
    site.insert("method".into(), method.into());
    site.insert("timeout".into(), timeout.into());
    site.insert("interval".into(), timeout.into());
    if let Some(p) = pattern {
        site.insert("pattern".into(), p.into());
    }
    let mut root = serde_yaml_ng::Mapping::new();
    root.insert("sites".into(), serde_yaml_ng::Value::Sequence(vec![site.into()]));
    let text = serde_yaml_ng::to_string(&root).expect("a mapping serializes");
    let from_args = Path::new(COMMAND_LINE);
    parse(&text, from_args, &|_| None).map(|mut c| c.sites.remove(0)).map_err(|mut e| {
        // The interval is `--timeout` again (no flag of its own): its problem is said once.
        e.problems.retain(|p| p.path != "sites[0].interval");
        for p in &mut e.problems {
            p.path = match p.path.strip_prefix("sites[0].") {
                Some("url") => "URL".to_owned(),
                Some(flag) => format!("--{flag}"),
                None => p.path.clone(),
            };
        }
        ConfigError::command_line(e.problems)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_the_argument_and_have_no_line() {
        let e = command_line_site("notaurl", "GET", "5q", None).unwrap_err();
        let places: Vec<(&str, Option<(usize, usize)>)> =
            e.problems.iter().map(|p| (p.path.as_str(), p.at)).collect();
        assert_eq!(places, [("URL", None), ("--timeout", None)]);
        assert!(command_line_site("http://127.0.0.1:9/", "HEAD", "2s", Some("ok")).is_ok());
    }
}
