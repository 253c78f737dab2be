//! A monitored site as the scheduler and the probe see it, after config validation.

use std::path::Path;
use std::time::Duration;

use regex::bytes::Regex;
use url::Url;

use super::Secret;

/// One site to check, fully validated.
#[derive(Debug, Clone)]
pub struct Site {
    /// Stable identifier from the config; the Kafka key and the primary key in storage.
    pub id: String,
    pub url: Url,
    /// HTTP method (`GET` by default); a standard one takes no allocation.
    pub method: http::Method,
    pub interval: Duration,
    /// Covers the whole check: DNS, connect, TLS, request, and reading the body.
    pub timeout: Duration,
    /// Optional regex searched in the response body (bytes, so non-UTF-8 bodies work too).
    /// Rarely set options are boxed: a default site stays small when there are 100k of them.
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
}

impl Site {
    /// True when a check of `other` would be the same request judged the same way: every field
    /// but the id is equal (the pattern by its text). Listed field by field, so that a new field
    /// cannot be forgotten here.
    pub fn same_check(&self, other: &Site) -> bool {
        let Site {
            id: _,
            url,
            method,
            interval,
            timeout,
            pattern,
            expected_status,
            headers,
            body,
            follow_redirects,
            max_redirects,
            max_body_bytes,
            tls,
        } = self;
        *url == other.url
            && *method == other.method
            && *interval == other.interval
            && *timeout == other.timeout
            && pattern.as_ref().map(|p| p.as_str()) == other.pattern.as_ref().map(|p| p.as_str())
            && *expected_status == other.expected_status
            && *headers == other.headers
            && *body == other.body
            && *follow_redirects == other.follow_redirects
            && *max_redirects == other.max_redirects
            && *max_body_bytes == other.max_body_bytes
            && *tls == other.tls
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
