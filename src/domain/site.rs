//! A monitored site as the scheduler and the probe see it, after config validation.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use regex::bytes::Regex;
use url::Url;

use super::Secret;

/// One site to check, fully validated. Kept small, because a producer holds every site of its
/// list (a million of them): what every site has its own value for is inline (80 bytes), the
/// rest is in [`SiteOptions`], shared by the sites that have the same (`site.method` and the
/// like read through `Deref`).
#[derive(Debug, Clone)]
pub struct Site {
    /// Stable identifier from the config; the Kafka key and the primary key in storage.
    pub id: String,
    pub url: SiteUrl,
    pub interval: Duration,
    /// Covers the whole check: DNS, connect, TLS, request, and reading the body.
    pub timeout: Duration,
    pub options: Arc<SiteOptions>,
}

impl Deref for Site {
    type Target = SiteOptions;

    fn deref(&self) -> &SiteOptions {
        &self.options
    }
}

/// A site's options that many sites share (most of a large list keeps the defaults).
#[derive(Debug)]
pub struct SiteOptions {
    /// HTTP method (`GET` by default); a standard one takes no allocation.
    pub method: http::Method,
    /// Optional regex searched in the response body (bytes, so non-UTF-8 bodies work too).
    pub pattern: Option<Box<Regex>>,
    pub expected_status: ExpectedStatus,
    /// Extra request headers; values may hold credentials, so they never print.
    pub headers: Box<[(String, Secret)]>,
    /// Request body (for POST, PUT, PATCH).
    pub body: Option<Box<str>>,
    /// Follow 3xx responses with a `Location`, up to `max_redirects` hops.
    pub follow_redirects: bool,
    pub max_redirects: u32,
    /// Reading stops past this many body bytes: the check fails with `body_too_large`.
    pub max_body_bytes: u64,
    pub tls: TlsOptions,
    /// When the consumer opens and closes incidents for this site (carried in every result).
    pub thresholds: Thresholds,
}

/// Incident thresholds of a site: `down_after` consecutive failures open an incident, `up_after`
/// consecutive successes close it, and `quorum` regions must agree for a site-wide incident
/// (none: a majority of the regions that report); `down_after` checks slower than
/// `degraded_above_ms` open a DEGRADED one, a certificate within `cert_warn_days` of its expiry
/// a CERT_EXPIRING one (0: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub down_after: u32,
    pub up_after: u32,
    pub quorum: Option<u32>,
    pub degraded_above_ms: Option<u32>,
    pub cert_warn_days: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            down_after: super::DEFAULT_DOWN_AFTER,
            up_after: super::DEFAULT_UP_AFTER,
            quorum: None,
            degraded_above_ms: None,
            cert_warn_days: super::DEFAULT_CERT_WARN_DAYS,
        }
    }
}

impl PartialEq for SiteOptions {
    /// Equal options may share one allocation: patterns compare by their source text. Listed
    /// field by field, so that a new field cannot be forgotten here.
    fn eq(&self, o: &Self) -> bool {
        let SiteOptions {
            method,
            pattern,
            expected_status,
            headers,
            body,
            follow_redirects,
            max_redirects,
            max_body_bytes,
            tls,
            thresholds,
        } = self;
        *method == o.method
            && pattern.as_ref().map(|p| p.as_str()) == o.pattern.as_ref().map(|p| p.as_str())
            && *expected_status == o.expected_status
            && *headers == o.headers
            && *body == o.body
            && *follow_redirects == o.follow_redirects
            && *max_redirects == o.max_redirects
            && *max_body_bytes == o.max_body_bytes
            && *thresholds == o.thresholds
            && *tls == o.tls
    }
}

impl Site {
    /// Writes what the consumer needs to judge this site's results into one of them: its
    /// interval and incident thresholds.
    pub fn stamp(&self, r: &mut super::CheckResult) {
        r.interval_ms = Some(u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX));
        r.down_after = Some(self.thresholds.down_after);
        r.up_after = Some(self.thresholds.up_after);
        r.quorum = self.thresholds.quorum;
        r.degraded_above_ms = self.thresholds.degraded_above_ms;
        r.cert_warn_days = Some(self.thresholds.cert_warn_days);
    }

    /// True when a check of `other` would be the same request judged the same way: every field
    /// but the id is equal.
    pub fn same_check(&self, other: &Site) -> bool {
        let Site { id: _, url, interval, timeout, options } = self;
        *url == other.url
            && *interval == other.interval
            && *timeout == other.timeout
            && (Arc::ptr_eq(options, &other.options) || **options == *other.options)
    }
}

/// A site's URL, validated at load and kept as its text: 16 bytes instead of [`Url`]'s 88, for
/// every site of the list. A check parses it again (well under a microsecond).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteUrl(Box<str>);

impl std::fmt::Display for SiteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl SiteUrl {
    pub fn new(url: &Url) -> Self {
        SiteUrl(url.as_str().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parsed URL (it parsed when the config was read, so it parses again).
    pub fn parse(&self) -> Url {
        Url::parse(&self.0).expect("a site url is validated when the config is read")
    }

    /// The host the per-host concurrency cap counts by, as [`Url::host_str`] gives it (an IPv6
    /// address in brackets). Read off the text: it is the `url` crate's serialisation of an
    /// http(s) url without credentials, so the host runs from `://` to the port, path, query or
    /// fragment.
    pub fn host(&self) -> &str {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        let end = match rest.starts_with('[') {
            true => rest.find(']').map_or(rest.len(), |i| i + 1),
            false => rest.find([':', '/', '?', '#']).unwrap_or(rest.len()),
        };
        &rest[..end]
    }
}

/// How the probe verifies a site's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// Verify the chain and the host name (on by default).
    pub verify: bool,
    /// Extra CA certificate (PEM) to trust, e.g. for an internal CA.
    pub ca_file: Option<Box<Path>>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions { verify: true, ca_file: None }
    }
}

/// Which HTTP status codes count as "up".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedStatus {
    /// 200–399: any success or redirect (the default).
    SuccessOrRedirect,
    /// Exactly these codes.
    Codes(Box<[u16]>),
}

impl ExpectedStatus {
    pub fn accepts(&self, code: u16) -> bool {
        match self {
            ExpectedStatus::SuccessOrRedirect => (200..400).contains(&code),
            ExpectedStatus::Codes(codes) => codes.contains(&code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_read_off_the_text_as_url_would() {
        for text in [
            "http://example.com/",
            "https://Example.COM:8443/a?b#c",
            "http://127.0.0.1:18080/s/1",
            "http://[::1]:8080/x",
            "https://[2001:db8::1]/",
            "http://xn--caf-dma.example/?q=1",
            "http://h#frag",
            "http://h?q",
        ] {
            let url = Url::parse(text).unwrap();
            assert_eq!(SiteUrl::new(&url).host(), url.host_str().unwrap(), "{text}");
        }
    }

    #[test]
    fn a_site_stays_small() {
        assert!(std::mem::size_of::<Site>() <= 80, "{}", std::mem::size_of::<Site>());
    }

    #[test]
    fn default_accepts_2xx_and_3xx_only() {
        let e = ExpectedStatus::SuccessOrRedirect;
        assert!(e.accepts(200) && e.accepts(204) && e.accepts(301) && e.accepts(399));
        assert!(!e.accepts(199) && !e.accepts(400) && !e.accepts(500));
    }

    #[test]
    fn explicit_codes_accept_only_those() {
        let e = ExpectedStatus::Codes([200, 418].into());
        assert!(e.accepts(418) && e.accepts(200));
        assert!(!e.accepts(201));
    }
}
