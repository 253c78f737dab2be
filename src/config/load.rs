//! Turns YAML text into a validated [`Config`]: parse, then read every field, collecting every
//! problem with its location. No network or database I/O happens here.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use regex::bytes::RegexBuilder;
use serde_yaml_ng::Value;
use url::Url;

use super::locate::Locations;
use super::reader::{Fields, Reader, join};
use super::{
    Config, ConfigError, ConsumerConfig, KafkaConfig, PostgresConfig, Problem, ProducerConfig, Secret, Shard,
    SqliteConfig,
};
use crate::domain::{ExpectedStatus, Site, TlsOptions};

const TOP: &[&str] = &[
    "region",
    "defaults",
    "sites",
    "kafka",
    "postgres",
    "sqlite",
    "consumer",
    "retention",
    "producer",
    "shard",
];
const PRODUCER: &[&str] = &["max_concurrency", "per_host_concurrency", "max_in_flight"];
const SHARD: &[&str] = &["index", "count"];
const SQLITE: &[&str] = &["path"];
const DEFAULTS: &[&str] = &["interval", "timeout", "expected_status"];
const SITE: &[&str] = &[
    "name",
    "url",
    "method",
    "interval",
    "timeout",
    "pattern",
    "expected_status",
    "headers",
    "body",
    "follow_redirects",
    "max_redirects",
    "max_body_bytes",
    "tls_verify",
    "tls_ca_file",
];
const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
const DEFAULT_MAX_REDIRECTS: u64 = 5;
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const KAFKA: &[&str] = &["bootstrap_servers", "topic", "group_id", "properties"];
const POSTGRES: &[&str] = &["url", "max_connections"];
const CONSUMER: &[&str] = &["batch_size", "batch_wait"];

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Compiled-regex size cap, so a hostile pattern cannot take the producer's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Reads and validates a config file, with `${VAR}` resolved from the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        problems: vec![Problem::new("", format!("cannot read file: {e}"))],
    })?;
    parse(&text, path, &|name| std::env::var(name).ok())
}

/// Validates config text. `env` resolves `${VAR}` references.
pub fn parse(text: &str, file: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError { file: file.to_owned(), problems };
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let mut p = Problem::new("", format!("not valid YAML: {e}"));
        p.at = e.location().map(|l| (l.line(), l.column()));
        fail(vec![p])
    })?;
    let mut r = Reader::new(env);
    let config = read_config(&mut r, &root);
    match config {
        Some(c) if r.problems.is_empty() => Ok(c),
        _ => {
            let places = Locations::of(text);
            let mut problems = r.problems;
            for p in &mut problems {
                p.at = places.find(&p.path);
            }
            Err(fail(problems))
        }
    }
}

struct SiteDefaults {
    interval: Duration,
    timeout: Duration,
    expected_status: ExpectedStatus,
}

fn read_config(r: &mut Reader, root: &Value) -> Option<Config> {
    if root.is_null() {
        r.problem("", "the file is empty");
        return None;
    }
    let top = r.fields(root, "", TOP)?;
    let region = match top.get("region") {
        Some((v, p)) => r.nonempty_string(v, &p),
        None => Some(gethostname::gethostname().to_string_lossy().into_owned()),
    };
    let defaults = read_defaults(r, &top);
    let sites = match top.get("sites") {
        Some((v, p)) => read_sites(r, v, &p, &defaults),
        None => Some(Vec::new()),
    };
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
    Some(Config {
        region: region?,
        sites: sites?,
        kafka: kafka.map_or(Some(None), |k| k.map(Some))?,
        postgres: postgres.map_or(Some(None), |p| p.map(Some))?,
        sqlite: sqlite?,
        consumer: consumer?,
        retention: retention.map_or(Some(None), |d| d.map(Some))?,
        producer: producer?,
        shard: shard.map_or(Some(None), |s| s.map(Some))?,
    })
}

fn read_producer(r: &mut Reader, v: &Value, path: &str) -> Option<ProducerConfig> {
    let f = r.fields(v, path, PRODUCER)?;
    let d = ProducerConfig::default();
    let max =
        f.get("max_concurrency").map_or(Some(d.max_concurrency as u64), |(v, p)| r.uint(v, &p, 1, 100_000));
    let per_host = f
        .get("per_host_concurrency")
        .map_or(Some(d.per_host_concurrency as u64), |(v, p)| r.uint(v, &p, 1, 100_000));
    let in_flight =
        f.get("max_in_flight").map_or(Some(d.max_in_flight as u64), |(v, p)| r.uint(v, &p, 1, 10_000_000));
    Some(ProducerConfig {
        max_concurrency: max? as usize,
        per_host_concurrency: per_host? as usize,
        max_in_flight: in_flight? as usize,
    })
}

fn read_shard(r: &mut Reader, v: &Value, path: &str) -> Option<Shard> {
    let f = r.fields(v, path, SHARD)?;
    let count = match f.get("count") {
        Some((v, p)) => r.uint(v, &p, 1, 10_000),
        None => {
            r.problem(&join(path, "count"), "missing: how many producers share the site list");
            None
        }
    };
    let index = match f.get("index") {
        Some((v, p)) => r.uint(v, &p, 0, 9_999).and_then(|i| match count {
            Some(c) if i >= c => {
                r.problem(&p, format!("index {i} must be below count {c}"));
                None
            }
            _ => Some(i),
        }),
        None => {
            r.problem(&join(path, "index"), "missing: this producer's place, from 0 to count - 1");
            None
        }
    };
    Some(Shard { index: index? as u32, count: count? as u32 })
}

fn read_sqlite(r: &mut Reader, v: &Value, path: &str) -> Option<SqliteConfig> {
    let f = r.fields(v, path, SQLITE)?;
    match f.get("path") {
        Some((v, p)) => r.nonempty_string(v, &p).map(|s| SqliteConfig { path: s.into() }),
        None => Some(SqliteConfig::default()),
    }
}

fn read_defaults(r: &mut Reader, top: &Fields) -> SiteDefaults {
    let mut d = SiteDefaults {
        interval: DEFAULT_INTERVAL,
        timeout: DEFAULT_TIMEOUT,
        expected_status: ExpectedStatus::SuccessOrRedirect,
    };
    let Some((v, p)) = top.get("defaults") else {
        return d;
    };
    let Some(f) = r.fields(v, &p, DEFAULTS) else {
        return d;
    };
    if let Some(i) = f.get("interval").and_then(|(v, p)| r.duration(v, &p)) {
        d.interval = i;
    }
    if let Some(t) = f.get("timeout").and_then(|(v, p)| r.duration(v, &p)) {
        d.timeout = t;
    }
    if let Some(e) = f.get("expected_status").and_then(|(v, p)| read_expected(r, v, &p)) {
        d.expected_status = e;
    }
    d
}

fn read_sites(r: &mut Reader, v: &Value, path: &str, d: &SiteDefaults) -> Option<Vec<Site>> {
    let items = r.list(v, path)?;
    if items.is_empty() {
        r.problem(path, "the site list is empty; add at least one site");
        return None;
    }
    let mut seen = HashSet::new();
    let mut sites = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match read_site(r, item, &p, d) {
            Some(site) => {
                if !seen.insert(site.id.clone()) {
                    r.problem(&join(&p, "name"), format!("duplicate site name `{}`", site.id));
                    ok = false;
                }
                sites.push(site);
            }
            None => ok = false,
        }
    }
    ok.then_some(sites)
}

fn read_site(r: &mut Reader, v: &Value, path: &str, d: &SiteDefaults) -> Option<Site> {
    let f = r.fields(v, path, SITE)?;
    let name = match f.get("name") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|n| site_name(r, n, &p)),
        None => {
            r.problem(&join(path, "name"), "missing: every site needs a unique name");
            None
        }
    };
    let url = match f.get("url") {
        Some((v, p)) => r.string(v, &p).and_then(|u| site_url(r, &u, &p)),
        None => {
            r.problem(&join(path, "url"), "missing: every site needs a url");
            None
        }
    };
    let method = match f.get("method") {
        Some((v, p)) => r.string(v, &p).and_then(|m| {
            let m = m.trim().to_ascii_uppercase();
            if METHODS.contains(&m.as_str()) {
                Some(m)
            } else {
                r.problem(&p, format!("`{m}` is not a supported method: use one of {}", METHODS.join(", ")));
                None
            }
        }),
        None => Some("GET".to_owned()),
    };
    let interval = f.get("interval").map_or(Some(d.interval), |(v, p)| r.duration(v, &p));
    let timeout = f.get("timeout").map_or(Some(d.timeout), |(v, p)| r.duration(v, &p));
    if let (Some(i), Some(t)) = (interval, timeout)
        && t > i
    {
        r.problem(
            &join(path, "timeout"),
            format!(
                "timeout {} is longer than the interval {}; a check must end before the next is due",
                humantime::format_duration(t),
                humantime::format_duration(i)
            ),
        );
    }
    let pattern = match f.get("pattern") {
        Some((v, p)) => match r.string(v, &p) {
            Some(s) => match RegexBuilder::new(&s).size_limit(REGEX_SIZE_LIMIT).build() {
                Ok(re) => Some(Some(re)),
                Err(e) => {
                    let msg = e.to_string().replace('\n', " ");
                    r.problem(&p, format!("invalid regex: {msg}"));
                    None
                }
            },
            None => None,
        },
        None => Some(None),
    };
    let expected_status = match f.get("expected_status") {
        Some((v, p)) => read_expected(r, v, &p),
        None => Some(d.expected_status.clone()),
    };
    let headers = match f.get("headers") {
        Some((v, p)) => read_headers(r, v, &p),
        None => Some(Vec::new()),
    };
    let body = f.get("body").map(|(v, p)| r.string(v, &p));
    let follow = f.get("follow_redirects").map_or(Some(false), |(v, p)| r.boolean(v, &p));
    let max_redirects =
        f.get("max_redirects").map_or(Some(DEFAULT_MAX_REDIRECTS), |(v, p)| r.uint(v, &p, 0, 50));
    let max_body =
        f.get("max_body_bytes").map_or(Some(DEFAULT_MAX_BODY), |(v, p)| r.byte_size(v, &p, 0, 1 << 30));
    let verify = f.get("tls_verify").map_or(Some(true), |(v, p)| r.boolean(v, &p));
    let ca_file = f.get("tls_ca_file").map(|(v, p)| r.nonempty_string(v, &p).map(std::path::PathBuf::from));
    Some(Site {
        headers: headers?,
        body: body.map_or(Some(None), |b| b.map(Some))?,
        follow_redirects: follow?,
        max_redirects: max_redirects? as u32,
        max_body_bytes: max_body?,
        tls: TlsOptions { verify: verify?, ca_file: ca_file.map_or(Some(None), |c| c.map(Some))? },
        id: name?,
        url: url?,
        method: method?,
        interval: interval?,
        timeout: timeout.filter(|t| interval.is_none_or(|i| *t <= i))?,
        pattern: pattern?,
        expected_status: expected_status?,
    })
}

fn read_headers(r: &mut Reader, v: &Value, path: &str) -> Option<Vec<(String, Secret)>> {
    let Value::Mapping(map) = v else {
        r.problem(path, "expected a mapping of header names to values");
        return None;
    };
    let mut out = Vec::with_capacity(map.len());
    let mut ok = true;
    for (k, v) in map {
        let Some(name) = k.as_str() else {
            r.problem(path, "header names must be strings");
            ok = false;
            continue;
        };
        let p = join(path, name);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            r.problem(&p, format!("`{name}` is not a valid header name"));
            ok = false;
            continue;
        }
        match r.string(v, &p) {
            Some(value) if http::HeaderValue::from_str(&value).is_ok() => {
                out.push((name.to_owned(), Secret::new(value)))
            }
            Some(_) => {
                r.problem(&p, "not a valid header value (control characters?)");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn site_name(r: &mut Reader, name: String, path: &str) -> Option<String> {
    let ok = name.len() <= 200
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/'));
    if ok {
        Some(name)
    } else {
        r.problem(path, format!("`{name}` is not a valid site name: use up to 200 of A-Z a-z 0-9 . _ - : /"));
        None
    }
}

fn site_url(r: &mut Reader, text: &str, path: &str) -> Option<Url> {
    match Url::parse(text.trim()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            r.problem(path, format!("scheme `{}` is not supported; use http or https", u.scheme()));
            None
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            r.problem(path, "the url has no host");
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            r.problem(path, format!("`{text}` is not a valid url: {e}"));
            None
        }
    }
}

fn read_expected(r: &mut Reader, v: &Value, path: &str) -> Option<ExpectedStatus> {
    let items = r.list(v, path)?;
    if items.is_empty() {
        r.problem(path, "list at least one status code, or leave the field out for 200-399");
        return None;
    }
    let codes: Vec<Option<u16>> = items
        .iter()
        .enumerate()
        .map(|(i, v)| r.uint(v, &format!("{path}[{i}]"), 100, 599).map(|c| c as u16))
        .collect();
    codes.into_iter().collect::<Option<Vec<_>>>().map(ExpectedStatus::Codes)
}

fn read_kafka(r: &mut Reader, v: &Value, path: &str) -> Option<KafkaConfig> {
    let f = r.fields(v, path, KAFKA)?;
    let bootstrap = match f.get("bootstrap_servers") {
        Some((v, p)) => r.nonempty_string(v, &p),
        None => {
            r.problem(&join(path, "bootstrap_servers"), "missing: e.g. `localhost:9092`");
            None
        }
    };
    let topic = match f.get("topic") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|t| topic_name(r, t, &p)),
        None => Some("sitemon.checks".to_owned()),
    };
    let group_id = match f.get("group_id") {
        Some((v, p)) => r.nonempty_string(v, &p),
        None => Some("sitemon".to_owned()),
    };
    let properties = match f.get("properties") {
        Some((v, p)) => read_properties(r, v, &p),
        None => Some(Vec::new()),
    };
    Some(KafkaConfig {
        bootstrap_servers: bootstrap?,
        topic: topic?,
        group_id: group_id?,
        properties: properties?,
    })
}

fn topic_name(r: &mut Reader, t: String, path: &str) -> Option<String> {
    let ok = t.len() <= 249
        && t != "."
        && t != ".."
        && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Some(t)
    } else {
        r.problem(path, format!("`{t}` is not a valid Kafka topic name (A-Z a-z 0-9 . _ -, at most 249)"));
        None
    }
}

fn read_properties(r: &mut Reader, v: &Value, path: &str) -> Option<Vec<(String, Secret)>> {
    let Value::Mapping(map) = v else {
        r.problem(path, "expected a mapping of librdkafka property names to values");
        return None;
    };
    let mut out = Vec::with_capacity(map.len());
    let mut ok = true;
    for (k, v) in map {
        let Some(k) = k.as_str() else {
            r.problem(path, "property names must be strings");
            ok = false;
            continue;
        };
        match r.string(v, &join(path, k)) {
            Some(s) => out.push((k.to_owned(), Secret::new(s))),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_postgres(r: &mut Reader, v: &Value, path: &str) -> Option<PostgresConfig> {
    let f = r.fields(v, path, POSTGRES)?;
    let url = match f.get("url") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|u| {
            if u.starts_with("postgres://") || u.starts_with("postgresql://") {
                Some(Secret::new(u))
            } else {
                r.problem(&p, "expected a postgres:// or postgresql:// url");
                None
            }
        }),
        None => {
            r.problem(&join(path, "url"), "missing: e.g. `${DATABASE_URL}`");
            None
        }
    };
    let max = match f.get("max_connections") {
        Some((v, p)) => r.uint(v, &p, 1, 1000).map(|n| n as u32),
        None => Some(4),
    };
    Some(PostgresConfig { url: url?, max_connections: max? })
}

fn read_consumer(r: &mut Reader, v: &Value, path: &str) -> Option<ConsumerConfig> {
    let f = r.fields(v, path, CONSUMER)?;
    let d = ConsumerConfig::default();
    let size = f.get("batch_size").map_or(Some(d.batch_size as u64), |(v, p)| r.uint(v, &p, 1, 100_000));
    let wait = f.get("batch_wait").map_or(Some(d.batch_wait), |(v, p)| r.duration(v, &p));
    Some(ConsumerConfig { batch_size: size? as usize, batch_wait: wait? })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn interpolates_secrets_without_printing_them() {
        let c = check("postgres:\n  url: ${DB}\n").unwrap();
        let pg = c.postgres.unwrap();
        assert_eq!(pg.url.expose(), "postgres://u:p@localhost/db");
        assert!(!format!("{pg:?}").contains("u:p@"));
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
