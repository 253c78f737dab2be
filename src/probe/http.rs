//! [`HyperProbe`]: resolve, connect, TLS handshake and HTTP/1.1 exchange driven step by step
//! so that each phase is timed on its own fresh connection; redirects are followed hop by hop,
//! with the site's headers and body kept to the site's own origin.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;
use url::Url;

use super::classify::{self, Failure};
use super::dns::Dns;
use super::expiry::not_after;
use super::tls::{Connectors, TlsSetupError};
use crate::domain::{CheckResult, CheckStatus, FailureKind, Secret, Site, micros};
use crate::ports::SiteProbe;

/// Read-ahead buffer under TLS: a typical server flight (certificate chain included) in one read.
const TLS_READ_AHEAD: usize = 8 * 1024;

/// Why the probe could not be built. Both happen before any check runs.
#[derive(Debug, thiserror::Error)]
pub enum ProbeSetupError {
    /// Every site TLS setting that cannot be used (by its first site).
    #[error("{} site TLS settings cannot be used", .0.len())]
    Tls(Vec<TlsSetupError>),
    #[error("cannot set up DNS resolution: {0}")]
    Dns(String),
}

/// The production probe, built on hyper's client connection API, native-tls and hickory DNS.
pub struct HyperProbe {
    region: String,
    dns: Dns,
    tls: Connectors,
    user_agent: String,
}

impl HyperProbe {
    /// Prepares TLS for every site's settings up front, so a bad CA file stops start-up.
    pub fn new(region: impl Into<String>, sites: &[Site]) -> Result<Self, ProbeSetupError> {
        Ok(HyperProbe {
            region: region.into(),
            dns: Dns::from_system().map_err(ProbeSetupError::Dns)?,
            tls: Connectors::for_sites(sites).map_err(ProbeSetupError::Tls)?,
            user_agent: format!("sitemon/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    /// Prepares TLS for a new site list (CA files read again), so that its sites' checks find
    /// their connectors ready. On error nothing changes, and every site whose settings cannot be
    /// used is named (by its index in `sites`); the running list's checks go on as before.
    pub fn prepare(&self, sites: &[Site]) -> Result<(), Vec<TlsSetupError>> {
        self.tls.prepare(sites)
    }
}

/// One hop's request: the site's settings, and the URL, method and body for this hop (a
/// redirect can change all three).
struct Hop<'a> {
    site: &'a Site,
    url: &'a Url,
    method: &'a str,
    body: Option<&'a str>,
    /// Whether the site's configured `headers` go with this request: only while every hop so far
    /// stayed on the site's own origin (they are secrets: Authorization, Cookie, API keys…).
    credentials: bool,
}

/// How one request/response exchange ended.
enum Outcome {
    Done,
    Redirect { location: String, code: u16 },
}

impl SiteProbe for HyperProbe {
    async fn check(&self, site: &Site, scheduled_at: DateTime<Utc>) -> CheckResult {
        let t0 = Instant::now();
        let mut r = CheckResult::new(
            &site.id,
            site.url.as_str(),
            &self.region,
            scheduled_at,
            Utc::now(),
            CheckStatus::Success,
        );
        r.pattern = site.pattern.as_ref().map(|p| p.as_str().to_owned());
        match tokio::time::timeout(site.timeout, self.follow(site, &mut r, t0)).await {
            Ok(Ok(())) => {}
            Ok(Err(f)) => r.fail(f.kind, f.message),
            Err(_) => r.fail(
                FailureKind::Timeout,
                format!("no complete response within {}", humantime::format_duration(site.timeout)),
            ),
        }
        r.total_us = Some(micros(t0.elapsed()));
        r
    }
}

impl HyperProbe {
    async fn follow(&self, site: &Site, r: &mut CheckResult, t0: Instant) -> Result<(), Failure> {
        let mut url = site.url.parse();
        let origin = url.origin();
        let mut method = site.method.as_str();
        let mut body = site.body.as_deref();
        let mut credentials = true;
        let mut hops = 0;
        loop {
            let hop = Hop { site, url: &url, method, body, credentials };
            match self.hop(&hop, r, t0).await? {
                Outcome::Done => return Ok(()),
                Outcome::Redirect { location, code } => {
                    if hops >= site.max_redirects {
                        return Err(Failure::new(
                            FailureKind::RedirectLimit,
                            format!("more than {} redirects (last to {location})", site.max_redirects),
                        ));
                    }
                    let next = url.join(&location).map_err(|e| {
                        Failure::new(
                            FailureKind::Protocol,
                            format!("invalid redirect location {location:?}: {e}"),
                        )
                    })?;
                    if !matches!(next.scheme(), "http" | "https") {
                        return Err(Failure::new(
                            FailureKind::Protocol,
                            format!("redirect to unsupported {next}"),
                        ));
                    }
                    let same_origin = next.origin() == origin;
                    if matches!(code, 307 | 308) {
                        // 307/308 resend the body; the site's body goes to the site's origin
                        // only, so such a redirect elsewhere ends the check instead.
                        if !same_origin && body.is_some_and(|b| !b.is_empty()) {
                            return Err(Failure::new(
                                FailureKind::RedirectLimit,
                                format!(
                                    "{code} redirect to another origin ({}) not followed: the request body is only resent to {}",
                                    next.origin().ascii_serialization(),
                                    origin.ascii_serialization()
                                ),
                            ));
                        }
                    } else {
                        method = if method == "HEAD" { "HEAD" } else { "GET" };
                        body = None;
                    }
                    // Once a hop leaves the site's origin, no later hop gets the credentials,
                    // even one back to the origin: that URL was chosen by the other host.
                    credentials &= same_origin;
                    url = next;
                    hops += 1;
                    for t in [&mut r.dns_us, &mut r.connect_us, &mut r.tls_us, &mut r.ttfb_us] {
                        *t = None;
                    }
                    r.tls_not_after = None;
                }
            }
        }
    }

    async fn hop(&self, hop: &Hop<'_>, r: &mut CheckResult, t0: Instant) -> Result<Outcome, Failure> {
        let url = hop.url;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');

        let ips = if let Ok(ip) = bare_host.parse() {
            vec![ip]
        } else {
            let t = Instant::now();
            let found = self.dns.resolve(bare_host).await?;
            r.dns_us = Some(micros(t.elapsed()));
            found
        };
        let t = Instant::now();
        let mut last_err = None;
        let mut tcp = None;
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some((s, addr));
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some((tcp, addr)) = tcp else {
            let e = last_err.expect("at least one address was tried");
            return Err(classify::connect(&e));
        };
        r.connect_us = Some(micros(t.elapsed()));
        r.remote_addr = Some(addr.to_string());
        let _ = tcp.set_nodelay(true);

        if url.scheme() == "https" {
            let t = Instant::now();
            let connector =
                self.tls.get(&hop.site.tls).map_err(|message| Failure::new(FailureKind::Tls, message))?;
            // OpenSSL reads each record as its 5-byte header, then its body: two reads per record
            // straight from the socket. Through this buffer a server's whole flight is one read.
            let tcp = BufReader::with_capacity(TLS_READ_AHEAD, tcp);
            let tls = connector.connect(bare_host, tcp).await.map_err(|e| classify::tls(&e))?;
            r.tls_us = Some(micros(t.elapsed()));
            r.tls_not_after = not_after(&tls);
            self.exchange(tls, hop, r, t0).await
        } else {
            self.exchange(tcp, hop, r, t0).await
        }
    }

    async fn exchange<S>(
        &self,
        stream: S,
        hop: &Hop<'_>,
        r: &mut CheckResult,
        t0: Instant,
    ) -> Result<Outcome, Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| classify::protocol(&e))?;
        let conn = tokio::spawn(conn);
        let req = self.request(hop)?;
        let result = async {
            let resp = sender.send_request(req).await.map_err(|e| classify::protocol(&e))?;
            r.ttfb_us = Some(micros(t0.elapsed()));
            self.response(resp, hop.site, r).await
        }
        .await;
        conn.abort();
        result
    }

    fn request(&self, hop: &Hop<'_>) -> Result<http::Request<Full<Bytes>>, Failure> {
        let (site, url) = (hop.site, hop.url);
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let mut b = http::Request::builder().method(hop.method).uri(path);
        let configured: &[(String, Secret)] = if hop.credentials { &site.headers } else { &[] };
        let has = |name: &str| configured.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        for (name, default) in
            [("host", host_header.as_str()), ("user-agent", &self.user_agent), ("accept", "*/*")]
        {
            if !has(name) {
                b = b.header(name, default);
            }
        }
        b = b.header(http::header::CONNECTION, "close");
        for (k, v) in configured {
            b = b.header(k.as_str(), v.expose());
        }
        let body = hop.body.map_or_else(Bytes::new, |s| Bytes::copy_from_slice(s.as_bytes()));
        b.body(Full::new(body))
            .map_err(|e| Failure::new(FailureKind::Protocol, format!("cannot build request: {e}")))
    }

    async fn response(
        &self,
        resp: http::Response<Incoming>,
        site: &Site,
        r: &mut CheckResult,
    ) -> Result<Outcome, Failure> {
        let code = resp.status().as_u16();
        r.status_code = Some(code);
        r.http_version = Some(format!("{:?}", resp.version()));
        if site.follow_redirects
            && resp.status().is_redirection()
            && let Some(location) = resp.headers().get(http::header::LOCATION)
        {
            let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
            return Ok(Outcome::Redirect { location, code });
        }
        let (body, len) = read_body(resp.into_body(), site.pattern.is_some(), site.max_body_bytes).await?;
        r.body_bytes = Some(len as i64);
        if let Some(re) = &site.pattern {
            r.pattern_matched = Some(re.is_match(&body));
        }
        if !site.expected_status.accepts(code) {
            return Err(Failure::new(FailureKind::UnexpectedStatus, format!("unexpected status {code}")));
        }
        if r.pattern_matched == Some(false) {
            return Err(Failure::new(FailureKind::PatternNotFound, "pattern not found in the body"));
        }
        Ok(Outcome::Done)
    }
}

/// Reads the body up to `max` bytes, keeping it only when a pattern needs it: memory stays
/// bounded by `max` whatever the server sends.
async fn read_body(mut body: Incoming, keep: bool, max: u64) -> Result<(Vec<u8>, u64), Failure> {
    let mut kept = Vec::new();
    let mut len: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify::protocol(&e))?;
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            if len > max {
                return Err(Failure::new(FailureKind::BodyTooLarge, format!("body larger than {max} bytes")));
            }
            if keep {
                kept.extend_from_slice(&data);
            }
        }
    }
    Ok((kept, len))
}
