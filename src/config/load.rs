//! Turns YAML text into a validated [`Config`]: parse, then read every section, collecting every
//! problem with its location; with [`Sites::Read`], the `sites_file` too. No network or
//! database I/O happens here.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::locate::Locations;
use super::reader::{Env, Reader};
use super::sections::{
    read_consumer, read_kafka, read_postgres, read_producer, read_schema_registry, read_shard, read_sqlite,
};
use super::site_file::{FileSites, read_sites_file};
use super::sites::{SiteDefaults, later_duplicates, read_defaults, read_sites};
use super::{Config, ConfigError, ConsumerConfig, Problem, ProducerConfig, SqliteConfig};
use crate::domain::Site;

pub(super) const TOP: &[&str] = &[
    "region",
    "defaults",
    "sites",
    "sites_file",
    "kafka",
    "postgres",
    "sqlite",
    "consumer",
    "retention",
    "producer",
    "shard",
    "schema_registry",
    "notify",
];

/// Which sites are read (and checked) with the config. Commands that check no site skip them
/// all: a site problem (or an unset `${VAR}` in a site's header) is not theirs, and a
/// million-site file costs them nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sites {
    /// `sites:` and the `sites_file`.
    All,
    /// `sites:` only.
    Inline,
    /// None: `Config::sites` is empty.
    Skip,
}

/// Reads and validates a config file, with `${VAR}` resolved from the process environment.
pub fn load_file(path: &Path, site_file: Sites) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        problems: vec![Problem::new("", format!("cannot read file: {e}"))],
    })?;
    parse_with(&text, path, &|name| std::env::var(name).ok(), site_file)
}

/// Validates config text with its inline sites (a `sites_file` it names is not read). `env`
/// resolves `${VAR}`.
pub fn parse(text: &str, file: &Path, env: Env) -> Result<Config, ConfigError> {
    parse_with(text, file, env, Sites::Inline)
}

/// Validates config text and the `sites` asked for; with [`Sites::All`], the sites of its
/// `sites_file` (a path relative to `file`'s directory) follow the inline ones in
/// `Config::sites`. Every problem of both files is reported at once, duplicate names among the
/// valid sites included.
pub fn parse_with(text: &str, file: &Path, env: Env, site_file: Sites) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError { file: file.to_owned(), problems };
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let mut p = Problem::new("", format!("not valid YAML: {e}"));
        p.at = e.location().map(|l| (l.line(), l.column()));
        fail(vec![p])
    })?;
    let mut r = Reader::new(env);
    let (config, source) = read_config(&mut r, &root, file, site_file);
    let from_file = match (&source.file, site_file) {
        (Some(path), Sites::All) => read_sites_file(&mut r, path, &source.defaults, false),
        _ => FileSites::default(),
    };
    let places = Locations::of(text);
    let mut problems = r.problems;
    let (inline, items) = source.inline;
    let mut sites = inline;
    if sites.is_empty() {
        sites = from_file.sites;
    } else {
        sites.extend(from_file.sites);
    }
    for i in later_duplicates(&sites) {
        let message = format!("duplicate site name `{}`", sites[i].id);
        problems.push(match i.checked_sub(items.len()) {
            None => Problem::new(format!("sites[{}].name", items[i]), message),
            Some(j) => Problem {
                at: Some((from_file.lines[j] as usize, 0)),
                file: source.file.clone(),
                ..Problem::new(
                    format!("{}.name", super::site_file::item_path(from_file.items[j] as usize)),
                    message,
                )
            },
        });
    }
    let config = config.map(|c| Config { sites, ..c });
    match config {
        Some(c) if problems.is_empty() => Ok(c),
        _ => {
            for p in problems.iter_mut().filter(|p| p.file.is_none()) {
                p.at = p.at.or_else(|| places.find(&p.path));
            }
            Err(fail(problems))
        }
    }
}

/// Fills in the line and column of problems found after [`load_file`] by checks that need more
/// than the YAML (e.g. librdkafka's view of `kafka.properties`), reading the file again.
pub fn locate(file: &Path, problems: &mut [Problem]) {
    let Ok(text) = std::fs::read_to_string(file) else { return };
    let places = Locations::of(&text);
    for p in problems.iter_mut().filter(|p| p.at.is_none() && p.file.is_none()) {
        p.at = places.find(&p.path);
    }
}

/// The site list as read apart from the other sections, so that its problems (the sites file's,
/// duplicate names among the valid sites) are reported with theirs.
#[derive(Default)]
struct SiteSource {
    defaults: SiteDefaults,
    file: Option<PathBuf>,
    /// The valid inline sites, and the index in `sites:` of each.
    inline: (Vec<Site>, Vec<u32>),
}

/// The sections, with `Config::sites` left empty, and the site list's source.
fn read_config(r: &mut Reader, root: &Value, file: &Path, sites: Sites) -> (Option<Config>, SiteSource) {
    let mut source = SiteSource::default();
    if root.is_null() {
        r.problem("", "the file is empty");
        return (None, source);
    }
    let Some(top) = r.fields(root, "", TOP) else { return (None, source) };
    let sites_file = top.get("sites_file").map(|(v, p)| {
        r.nonempty_string(v, &p).map(|f| file.parent().unwrap_or(Path::new("")).join(f.trim()))
    });
    if sites != Sites::Skip {
        source.defaults = read_defaults(r, &top);
        source.file = sites_file.clone().flatten();
        if let Some((v, p)) = top.get("sites") {
            source.inline = read_sites(r, v, &p, &source.defaults);
        }
    }
    let config = read_sections(r, &top, sites_file);
    (config, source)
}

fn read_sections(
    r: &mut Reader,
    top: &super::reader::Fields,
    sites_file: Option<Option<PathBuf>>,
) -> Option<Config> {
    let region = match top.get("region") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|region| {
            if region.len() > crate::domain::MAX_ID_BYTES || region.contains('\0') {
                r.problem(
                    &p,
                    format!("a region label holds at most {} bytes and no NUL", crate::domain::MAX_ID_BYTES),
                );
                None
            } else {
                Some(region)
            }
        }),
        None => match gethostname::gethostname().to_string_lossy().into_owned() {
            host if host.is_empty() || host.len() > crate::domain::MAX_ID_BYTES => {
                r.problem("region", "no region label and the host name cannot be one: set `region:`");
                None
            }
            host => Some(host),
        },
    };
    let region_from_host = top.get("region").is_none();
    let kafka = top.get("kafka").map(|(v, p)| read_kafka(r, v, &p));
    let postgres = top.get("postgres").map(|(v, p)| read_postgres(r, v, &p));
    let consumer = match top.get("consumer") {
        Some((v, p)) => read_consumer(r, v, &p),
        None => Some(ConsumerConfig::default()),
    };
    let sqlite = match top.get("sqlite") {
        Some((v, p)) => read_sqlite(r, v, &p),
        None => Some(SqliteConfig::default()),
    };
    let retention = top.get("retention").map(|(v, p)| r.duration(v, &p));
    let producer = match top.get("producer") {
        Some((v, p)) => read_producer(r, v, &p),
        None => Some(ProducerConfig::default()),
    };
    let shard = top.get("shard").map(|(v, p)| read_shard(r, v, &p));
    let schema_registry = top.get("schema_registry").map(|(v, p)| read_schema_registry(r, v, &p));
    let notify = top.get("notify").map(|(v, p)| super::notify::read_notify(r, v, &p));
    Some(Config {
        region: region?,
        region_from_host,
        sites: Vec::new(),
        sites_file: sites_file.map_or(Some(None), |f| f.map(Some))?,
        kafka: kafka.map_or(Some(None), |k| k.map(Some))?,
        postgres: postgres.map_or(Some(None), |p| p.map(Some))?,
        sqlite: sqlite?,
        consumer: consumer?,
        retention: retention.map_or(Some(None), |d| d.map(Some))?,
        producer: producer?,
        shard: shard.map_or(Some(None), |s| s.map(Some))?,
        schema_registry: schema_registry.map_or(Some(None), |s| s.map(Some))?,
        notify: notify.map_or(Some(None), |n| n.map(Some))?,
    })
}

/// Parsing a large config builds a YAML tree many times the size of the sites it yields, and the
/// sites are then moved into the producer's roster; once that is built, hand the freed pages back
/// to the system so a 100k-site producer does not keep them as RSS.
pub fn release_parse_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the OS; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::sites::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT};

    fn env(name: &str) -> Option<String> {
        (name == "DB").then(|| "postgres://u:p@localhost/db".to_owned())
    }

    fn check(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("t.yaml"), &env)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = check("region: eu\nsites:\n  - name: a\n    url: http://127.0.0.1:1/\n").unwrap();
        assert_eq!(c.region, "eu");
        assert_eq!(c.sites[0].interval, DEFAULT_INTERVAL);
        assert_eq!(c.sites[0].timeout, DEFAULT_TIMEOUT);
        assert!(c.kafka.is_none() && c.postgres.is_none());
    }

    #[test]
    fn results_from_the_future_are_allowed_two_minutes_by_default() {
        let c = check("region: eu\n").unwrap();
        assert_eq!(c.consumer.max_clock_skew, std::time::Duration::from_secs(120));
        let c = check("region: eu\nconsumer:\n  max_clock_skew: 1h\n").unwrap();
        assert_eq!(c.consumer.max_clock_skew, std::time::Duration::from_secs(3600));
    }

    #[test]
    fn without_a_region_the_host_name_labels_the_results_and_the_config_says_so() {
        let c = check("sites:\n  - {name: a, url: 'http://x/'}\n").unwrap();
        assert!(c.region_from_host);
        assert_eq!(c.region, gethostname::gethostname().to_string_lossy());
        assert!(!check("region: eu\n").unwrap().region_from_host);
    }

    #[test]
    fn interpolates_secrets_without_printing_them() {
        let c = check("postgres:\n  url: ${DB}\n").unwrap();
        let pg = c.postgres.unwrap();
        assert_eq!(pg.url.expose(), "postgres://u:p@localhost/db");
        assert!(!format!("{pg:?}").contains("u:p@"));
    }

    #[test]
    fn kafka_events_topic_defaults_and_is_validated_like_the_topic() {
        let k = check("kafka:\n  bootstrap_servers: h:9092\n").unwrap().kafka.unwrap();
        assert_eq!((k.topic.as_str(), k.events_topic.as_str()), ("sitemon.checks", "sitemon.events"));
        let k =
            check("kafka:\n  bootstrap_servers: h:9092\n  events_topic: alerts.in\n").unwrap().kafka.unwrap();
        assert_eq!(k.events_topic, "alerts.in");
        let problems = |text: &str| -> Vec<String> {
            check(text).unwrap_err().problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect()
        };
        let p = problems("kafka:\n  bootstrap_servers: h:9092\n  events_topic: 'bad topic!'\n");
        assert!(
            p.len() == 1 && p[0].starts_with("kafka.events_topic: `bad topic!` is not a valid Kafka topic"),
            "{p:?}"
        );
        let p = problems("kafka:\n  bootstrap_servers: h:9092\n  topic: a\n  events_topic: a\n");
        assert!(p.len() == 1 && p[0].starts_with("kafka.events_topic: `a` is also kafka.topic"), "{p:?}");
        let p = problems("kafka:\n  bootstrap_servers: h:9092\n  topic: sitemon.events\n");
        assert!(
            p.len() == 1 && p[0].starts_with("kafka.topic: `sitemon.events` is also the default"),
            "{p:?}"
        );
        // Kafka cannot hold both `sitemon_events` and `sitemon.events`.
        let p = problems("kafka:\n  bootstrap_servers: h:9092\n  topic: sitemon_events\n");
        assert!(p.len() == 1 && p[0].contains("is also the default"), "{p:?}");
    }

    #[test]
    fn schema_registry_section() {
        let c = check("schema_registry:\n  url: https://r.test:8081/\n  username: u\n  password: ${DB}\n")
            .unwrap();
        let sr = c.schema_registry.unwrap();
        assert_eq!((sr.url.as_str(), sr.username.as_deref()), ("https://r.test:8081", Some("u")));
        assert_eq!(sr.password.as_ref().unwrap().expose(), "postgres://u:p@localhost/db");
        assert!(!format!("{sr:?}").contains("u:p@"), "the password is never printed");
        let err = check("schema_registry:\n  url: http://u:hunter2@r:8081\n").unwrap_err();
        assert_eq!(err.problems[0].path, "schema_registry.url", "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = check("schema_registry:\n  url: ftp://r\n  password: x\n  colour: 1\n").unwrap_err();
        let paths: Vec<_> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["schema_registry.colour", "schema_registry.url", "schema_registry.username"],
            "{err}"
        );
        assert!(check("region: x\n").unwrap().schema_registry.is_none());
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let err = check(
            "sites:\n  - name: a\n    url: ftp://x/\n  - name: a\n    url: http://x/\n    interval: 0s\n    colour: red\nkafka:\n  bootstrap_servers: ${MISSING}\n",
        )
        .unwrap_err();
        let paths: Vec<_> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["sites[0].url", "sites[1].colour", "sites[1].interval", "kafka.bootstrap_servers"],
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_and_timeout_over_interval() {
        let err = check(
            "sites:\n  - {name: a, url: 'http://x/'}\n  - {name: a, url: 'http://y/', interval: 5s, timeout: 10s}\n",
        )
        .unwrap_err();
        let paths: Vec<_> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["sites[1].timeout"], "{err}");
        let err =
            check("sites:\n  - {name: a, url: 'http://x/'}\n  - {name: a, url: 'http://y/'}\n").unwrap_err();
        assert_eq!(err.problems[0].path, "sites[1].name");
    }

    #[test]
    fn a_quorum_past_the_regions_tracked_is_a_problem() {
        let max = crate::domain::MAX_REGIONS;
        let site = "  - {name: a, url: 'http://x/'}\n";
        assert!(check(&format!("sites:\n  - {{name: a, url: 'http://x/', quorum: {max}}}\n")).is_ok());
        let err = check(&format!(
            "defaults:\n  quorum: {}\nsites:\n{site}  - {{name: b, url: 'http://y/', quorum: 100}}\n",
            max + 1
        ))
        .unwrap_err();
        let paths: Vec<_> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["defaults.quorum", "sites[1].quorum"], "{err}");
        assert_eq!(err.problems[0].at, Some((2, 3)), "{err}");
        assert!(err.problems[1].message.contains(&format!("at most {max} regions are tracked")), "{err}");
    }

    #[test]
    fn the_thresholds_of_slowness_and_certificates_are_read_and_checked() {
        let ok = check(
            "defaults:\n  cert_warn_days: 30\nsites:\n  - {name: a, url: 'https://x/', degraded_above: 1500ms}\n\
             \x20 - {name: b, url: 'https://y/', cert_warn_days: 0}\n",
        )
        .unwrap();
        let t: Vec<_> =
            ok.sites.iter().map(|s| (s.thresholds.degraded_above_ms, s.thresholds.cert_warn_days)).collect();
        assert_eq!(t, [(Some(1500), 30), (None, 0)]);
        let err = check(
            "defaults:\n  cert_warn_days: -1\nsites:\n  - {name: a, url: 'http://x/', degraded_above: 500us}\n\
             \x20 - {name: b, url: 'http://y/', cert_warn_days: 5000, degraded_above: fast}\n",
        )
        .unwrap_err();
        let paths: Vec<_> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "defaults.cert_warn_days",
                "sites[0].degraded_above",
                "sites[1].degraded_above",
                "sites[1].cert_warn_days"
            ],
            "{err}"
        );
        assert!(err.problems[1].message.contains("at least 1ms"), "{err}");
    }

    #[test]
    fn invalid_yaml_names_the_line() {
        let err = check("region: a\nsites: [\n").unwrap_err();
        assert!(err.problems[0].at.is_some_and(|(line, _)| line >= 2), "{err}");
    }

    #[test]
    fn problems_carry_line_and_column() {
        let err = check("sites:\n  - name: a\n    url: http://x/\n    timout: 5s\n").unwrap_err();
        assert_eq!(err.problems[0].path, "sites[0].timout");
        assert_eq!(err.problems[0].at, Some((4, 5)));
        assert!(err.problems[0].message.contains("did you mean `timeout`?"), "{err}");
        assert!(err.to_string().contains("t.yaml:4:5: sites[0].timout: unknown field"), "{err}");
    }
}
