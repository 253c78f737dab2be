//! `notify.providers`: where alerts go — a webhook, Slack, PagerDuty or email over SMTP — with
//! their secrets (URLs that are credentials, header values, routing keys, passwords), each type
//! with its own keys.

use std::path::PathBuf;
use std::time::Duration;

use serde_yaml_ng::Value;

use super::Secret;
use super::reader::{Fields, Reader, join};
use crate::notify::Channel;

const PROVIDER: &[&str] = &[
    "type",
    "url",
    "routing_key",
    "headers",
    "timeout",
    "rate_limit",
    "host",
    "port",
    "tls",
    "username",
    "password",
    "from",
    "to",
    "ca_file",
];
const KINDS: &[&str] = &["webhook", "slack", "pagerduty", "email"];
/// The keys each type takes (besides `type`, `timeout` and `rate_limit`).
const KEYS: [(&str, &[&str]); 4] = [
    ("webhook", &["url", "headers"]),
    ("slack", &["url"]),
    ("pagerduty", &["url", "routing_key"]),
    ("email", &["host", "port", "tls", "username", "password", "from", "to", "ca_file"]),
];
/// PagerDuty's Events API v2 endpoint (the EU service uses `events.eu.pagerduty.com`).
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Where requests go: a secret for webhooks and Slack (the URL is the credential); for
    /// email, `smtp://host:port`.
    pub url: Secret,
    /// Longest wait for an answer.
    pub timeout: Duration,
    /// `rate_limit` (e.g. `1/s`, `30/min`): at most that many requests, evenly spaced — the
    /// least time from one request's start to the next.
    pub spacing: Option<Duration>,
}

/// How an email provider secures its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required (the default; port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// None: only for a relay on the same host (port 25); credentials are then refused.
    None,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// sitemon's JSON, with these extra headers (their values are secrets).
    Webhook {
        headers: Vec<(String, Secret)>,
    },
    Slack,
    PagerDuty {
        routing_key: Secret,
    },
    Email(EmailConfig),
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// A PEM CA certificate to trust besides the system's (a private relay).
    pub ca_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
}

impl ProviderKind {
    /// The request shape it speaks.
    pub fn channel(&self) -> Channel {
        match self {
            ProviderKind::Webhook { .. } => Channel::Webhook,
            ProviderKind::Slack => Channel::Slack,
            ProviderKind::PagerDuty { .. } => Channel::PagerDuty,
            ProviderKind::Email(_) => Channel::Email,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ProviderKind::Webhook { .. } => "webhook",
            ProviderKind::Slack => "slack",
            ProviderKind::PagerDuty { .. } => "pagerduty",
            ProviderKind::Email(_) => "email",
        }
    }
}

fn http_url(r: &mut Reader, v: &Value, path: &str) -> Option<Secret> {
    let u = r.nonempty_string(v, path)?;
    match url::Url::parse(&u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => Some(Secret::new(u)),
        // The value may be a credential (a Slack webhook URL): never quoted.
        _ => {
            r.problem(path, "expected an http:// or https:// url");
            None
        }
    }
}

fn required<T>(
    r: &mut Reader,
    f: &Fields,
    path: &str,
    key: &str,
    hint: &str,
    read: impl FnOnce(&mut Reader, &Value, &str) -> Option<T>,
) -> Option<T> {
    match f.get(key) {
        Some((v, p)) => read(r, v, &p),
        None => {
            r.problem(&join(path, key), format!("missing: {hint}"));
            None
        }
    }
}

fn mailbox(r: &mut Reader, v: &Value, path: &str) -> Option<String> {
    let s = r.nonempty_string(v, path)?;
    match s.parse::<lettre::message::Mailbox>() {
        Ok(_) => Some(s),
        Err(e) => {
            r.problem(path, format!("`{s}` is not an email address: {e}"));
            None
        }
    }
}

fn read_email(r: &mut Reader, f: &Fields, path: &str) -> Option<EmailConfig> {
    let host = required(r, f, path, "host", "the SMTP server, e.g. `smtp.example.com`", |r, v, p| {
        r.nonempty_string(v, p)
    });
    let tls = f.get("tls").map_or(Some(SmtpTls::StartTls), |(v, p)| {
        r.nonempty_string(v, &p).and_then(|t| match t.as_str() {
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            "none" => Some(SmtpTls::None),
            _ => {
                r.problem(&p, "expected one of: starttls, tls, none");
                None
            }
        })
    });
    let default_port = match tls {
        Some(SmtpTls::Tls) => 465,
        Some(SmtpTls::None) => 25,
        _ => 587,
    };
    let port = f.get("port").map_or(Some(default_port), |(v, p)| r.uint(v, &p, 1, 65_535));
    let username = f.get("username").map(|(v, p)| r.nonempty_string(v, &p));
    let password = f.get("password").map(|(v, p)| r.nonempty_string(v, &p).map(Secret::new));
    if password.is_some() != username.is_some() {
        let (key, what) = if password.is_some() {
            ("username", "`password` needs its user")
        } else {
            ("password", "`username` needs its password, e.g. `${SMTP_PASSWORD}`")
        };
        r.problem(&join(path, key), format!("missing: {what}"));
    }
    if tls == Some(SmtpTls::None) && password.is_some() {
        r.problem(
            &join(path, "password"),
            "a password is never sent without TLS: set `tls: starttls` or `tls`",
        );
    }
    let ca_file = f.get("ca_file").map(|(v, p)| r.nonempty_string(v, &p).map(PathBuf::from));
    let from = required(r, f, path, "from", "the sender, e.g. `sitemon <alerts@example.com>`", mailbox);
    let to = required(r, f, path, "to", "the recipients, e.g. `[oncall@example.com]`", |r, v, p| {
        let items = r.list(v, p)?;
        if items.is_empty() {
            r.problem(p, "name at least one recipient");
            return None;
        }
        let to: Vec<Option<String>> =
            items.iter().enumerate().map(|(i, v)| mailbox(r, v, &format!("{p}[{i}]"))).collect();
        to.into_iter().collect()
    });
    Some(EmailConfig {
        host: host?,
        port: port? as u16,
        tls: tls?,
        username: username.map_or(Some(None), |u| u.map(Some))?,
        password: password.map_or(Some(None), |p| p.map(Some))?,
        ca_file: ca_file.map_or(Some(None), |c| c.map(Some))?,
        from: from?,
        to: to?,
    })
}

pub fn read_provider(r: &mut Reader, name: &str, v: &Value, path: &str) -> Option<ProviderConfig> {
    let f = r.fields(v, path, PROVIDER)?;
    let kind = required(r, &f, path, "type", &format!("one of {}", KINDS.join(", ")), |r, v, p| {
        r.nonempty_string(v, p).and_then(|k| {
            if !KINDS.contains(&k.as_str()) {
                r.problem(p, format!("unknown provider type `{k}`; expected one of: {}", KINDS.join(", ")));
                return None;
            }
            Some(k)
        })
    })?;
    let takes = KEYS.iter().find(|(k, _)| *k == kind).map(|(_, keys)| *keys).unwrap_or_default();
    for key in
        PROVIDER.iter().filter(|k| !["type", "timeout", "rate_limit"].contains(k) && !takes.contains(k))
    {
        if let Some((_, p)) = f.get(key) {
            r.problem(&p, format!("a {kind} provider has no `{key}`; it takes: {}", takes.join(", ")));
        }
    }
    let timeout = f.get("timeout").map_or(Some(Duration::from_secs(10)), |(v, p)| r.duration(v, &p));
    let spacing = f.get("rate_limit").map_or(Some(None), |(v, p)| rate_limit(r, v, &p).map(Some));
    let (url, kind) = match kind.as_str() {
        "pagerduty" => {
            let url = f.get("url").map_or(Some(Secret::new(PAGERDUTY_URL)), |(v, p)| http_url(r, v, &p));
            let key = required(
                r,
                &f,
                path,
                "routing_key",
                "the integration's routing key, e.g. `${PAGERDUTY_ROUTING_KEY}`",
                |r, v, p| r.nonempty_string(v, p).map(Secret::new),
            );
            (url, key.map(|routing_key| ProviderKind::PagerDuty { routing_key }))
        }
        "email" => {
            let email = read_email(r, &f, path);
            (
                email.as_ref().map(|e| Secret::new(format!("smtp://{}:{}", e.host, e.port))),
                email.map(ProviderKind::Email),
            )
        }
        other => {
            let url = required(r, &f, path, "url", "e.g. `${SLACK_WEBHOOK_URL}`", http_url);
            let kind = if other == "slack" {
                Some(ProviderKind::Slack)
            } else {
                let headers = f.get("headers").map_or(Some(Vec::new()), |(v, p)| {
                    r.secret_map(v, &p, "header", |name, value| {
                        http::HeaderName::from_bytes(name.as_bytes())
                            .map_err(|_| format!("`{name}` is not a valid header name"))?;
                        // The value is a secret: never quoted.
                        http::HeaderValue::from_str(value).map(drop).map_err(|_| {
                            "the value is not a valid header value (a line break or a control character; check the variable's end)".to_owned()
                        })
                    })
                });
                headers.map(|headers| ProviderKind::Webhook { headers })
            };
            (url, kind)
        }
    };
    Some(ProviderConfig {
        name: name.to_owned(),
        kind: kind?,
        url: url?,
        timeout: timeout?,
        spacing: spacing?,
    })
}

/// `N/s`, `N/min` or `N/h` (N a whole number ≥ 1) as the least time between two requests.
fn rate_limit(r: &mut Reader, v: &Value, path: &str) -> Option<Duration> {
    let text = r.nonempty_string(v, path)?;
    let parsed = text.trim().split_once('/').and_then(|(n, per)| {
        let n: u32 = n.trim().parse().ok().filter(|n| *n >= 1)?;
        let per = match per.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return None,
        };
        Some(Duration::from_secs(per) / n)
    });
    if parsed.is_none() {
        r.problem(path, format!("`{text}` is not a rate; use e.g. `1/s`, `30/min`, `100/h`"));
    }
    parsed
}
