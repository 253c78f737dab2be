//! [`HyperProbe`]: resolve, connect, TLS handshake and HTTP/1.1 exchange driven step by step
//! so that each phase is timed on its own fresh connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::classify::{self, Failure};
use crate::domain::{CheckResult, CheckStatus, FailureKind, Site};
use crate::ports::SiteProbe;

/// Bodies are read up to this many bytes; past it the check fails with `body_too_large`.
const MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// The production probe, built on hyper's client connection API and native-tls.
pub struct HyperProbe {
    region: String,
    tls: tokio_native_tls::TlsConnector,
    user_agent: String,
}

impl HyperProbe {
    pub fn new(region: impl Into<String>) -> Result<Self, tokio_native_tls::native_tls::Error> {
        let tls = tokio_native_tls::native_tls::TlsConnector::builder().build()?;
        Ok(HyperProbe {
            region: region.into(),
            tls: tls.into(),
            user_agent: format!("sitemon/{}", env!("CARGO_PKG_VERSION")),
        })
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl SiteProbe for HyperProbe {
    async fn check(&self, site: &Site, scheduled_at: DateTime<Utc>) -> CheckResult {
        let started_at = Utc::now();
        let t0 = Instant::now();
        let mut r = CheckResult::new(
            &site.id,
            site.url.as_str(),
            &self.region,
            scheduled_at,
            started_at,
            CheckStatus::Success,
        );
        r.pattern = site.pattern.as_ref().map(|p| p.as_str().to_owned());
        match tokio::time::timeout(site.timeout, self.run(site, &mut r, t0)).await {
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
    async fn run(&self, site: &Site, r: &mut CheckResult, t0: Instant) -> Result<(), Failure> {
        let url = &site.url;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');

        let addrs: Vec<SocketAddr> = if let Ok(ip) = bare_host.parse() {
            vec![SocketAddr::new(ip, port)]
        } else {
            let t = Instant::now();
            let found = tokio::net::lookup_host((bare_host, port)).await.map_err(|e| classify::dns(&e))?;
            r.dns_us = Some(micros(t.elapsed()));
            found.collect()
        };
        let t = Instant::now();
        let mut last_err = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    tcp = Some((s, *addr));
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some((tcp, addr)) = tcp else {
            return Err(match last_err {
                Some(e) => classify::connect(&e),
                None => Failure::new(FailureKind::Dns, "host resolved to no addresses"),
            });
        };
        r.connect_us = Some(micros(t.elapsed()));
        r.remote_addr = Some(addr.to_string());
        let _ = tcp.set_nodelay(true);

        if url.scheme() == "https" {
            let t = Instant::now();
            let tls = self.tls.connect(bare_host, tcp).await.map_err(|e| classify::tls(&e))?;
            r.tls_us = Some(micros(t.elapsed()));
            self.exchange(tls, site, r, t0).await
        } else {
            self.exchange(tcp, site, r, t0).await
        }
    }

    async fn exchange<S>(
        &self,
        stream: S,
        site: &Site,
        r: &mut CheckResult,
        t0: Instant,
    ) -> Result<(), Failure>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| classify::protocol(&e))?;
        let conn = tokio::spawn(conn);
        let result = self.request(&mut sender, site, r, t0).await;
        conn.abort();
        result
    }

    async fn request(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        site: &Site,
        r: &mut CheckResult,
        t0: Instant,
    ) -> Result<(), Failure> {
        let url = &site.url;
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let host_header = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let req = http::Request::builder()
            .method(site.method.as_str())
            .uri(path)
            .header(http::header::HOST, host_header)
            .header(http::header::USER_AGENT, &self.user_agent)
            .header(http::header::ACCEPT, "*/*")
            .header(http::header::CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| Failure::new(FailureKind::Protocol, format!("cannot build request: {e}")))?;
        let resp = sender.send_request(req).await.map_err(|e| classify::protocol(&e))?;
        r.ttfb_us = Some(micros(t0.elapsed()));
        let code = resp.status().as_u16();
        r.status_code = Some(code);
        r.http_version = Some(format!("{:?}", resp.version()));
        let keep = site.pattern.is_some();
        let (body, len) = read_body(resp.into_body(), keep).await?;
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
        Ok(())
    }
}

/// Reads the body up to [`MAX_BODY_BYTES`], keeping it only when a pattern needs it.
async fn read_body(mut body: Incoming, keep: bool) -> Result<(Vec<u8>, u64), Failure> {
    let mut kept = Vec::new();
    let mut len: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify::protocol(&e))?;
        if let Ok(data) = frame.into_data() {
            len += data.len() as u64;
            if len > MAX_BODY_BYTES {
                return Err(Failure::new(
                    FailureKind::BodyTooLarge,
                    format!("body larger than {MAX_BODY_BYTES} bytes"),
                ));
            }
            if keep {
                kept.extend_from_slice(&data);
            }
        }
    }
    Ok((kept, len))
}
