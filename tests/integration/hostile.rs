//! The hostile-target suite: sites that are down, slow, broken or malicious are classified
//! within their timeout, with memory bounded by the body cap. Every target is a local server.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use sitemon::domain::{CheckResult, FailureKind, Site};
use sitemon::ports::SiteProbe;
use sitemon::probe::HyperProbe;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::support::raw::{self, answer, read_head, read_request};
use crate::support::{sites, tls};

const TIMEOUT_MS: u64 = 1000;

/// A site from a YAML flow mapping, validated like any config.
fn site(fields: &str) -> Site {
    let text = format!("sites:\n  - {{name: t, timeout: {TIMEOUT_MS}ms, {fields}}}\n");
    let mut cfg =
        sitemon::config::parse(&text, "hostile.yaml".as_ref(), &|_| None).unwrap_or_else(|e| panic!("{e}"));
    cfg.sites.remove(0)
}

async fn check_owned(site: Site) -> CheckResult {
    check(&site).await
}

async fn check(site: &Site) -> CheckResult {
    let probe = HyperProbe::new("test", std::slice::from_ref(site)).unwrap();
    let r = probe.check(site, Utc::now()).await;
    let total = r.total_us.expect("total time is always set");
    assert!(
        total <= (TIMEOUT_MS as i64 + 500) * 1000,
        "{}: took {total} µs, more than the {TIMEOUT_MS} ms timeout",
        site.url
    );
    r
}

fn kind(r: &CheckResult) -> Option<FailureKind> {
    r.failure_kind
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_time_out() {
    let addr = raw::serve(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ").await;
        for _ in 0..100 {
            if s.write_all(b"a").await.is_err() {
                return;
            }
            // The behaviour under test: one header byte every 200 ms (slowloris).
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let r = check(&site(&format!("url: 'http://{addr}/'"))).await;
    assert_eq!(kind(&r), Some(FailureKind::Timeout), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn accepting_and_never_answering_times_out() {
    let addr = raw::serve(|mut s| async move {
        read_head(&mut s).await;
        std::future::pending::<()>().await;
    })
    .await;
    let r = check(&site(&format!("url: 'http://{addr}/'"))).await;
    assert_eq!(kind(&r), Some(FailureKind::Timeout), "{r:?}");
    assert!(r.connect_us.is_some() && r.ttfb_us.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_body_stops_at_the_cap() {
    let addr = raw::serve(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await;
        let chunk = [b'x'; 65536];
        loop {
            if s.write_all(b"10000\r\n").await.is_err()
                || s.write_all(&chunk).await.is_err()
                || s.write_all(b"\r\n").await.is_err()
            {
                return;
            }
        }
    })
    .await;
    let r =
        check(&site(&format!("url: 'http://{addr}/', max_body_bytes: 256 KiB, pattern: never-there"))).await;
    assert_eq!(kind(&r), Some(FailureKind::BodyTooLarge), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn body_over_the_cap_is_body_too_large() {
    let addr = raw::serve(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n").await;
        let _ = s.write_all(&vec![b'y'; 2_000_000]).await;
    })
    .await;
    let r = check(&site(&format!("url: 'http://{addr}/', max_body_bytes: 1000000"))).await;
    assert_eq!(kind(&r), Some(FailureKind::BodyTooLarge), "{r:?}");
    assert_eq!(r.status_code, Some(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_loop_hits_the_limit_and_redirects_are_followed() {
    let addr = raw::serve(|mut s| async move {
        let head = read_head(&mut s).await;
        let resp: &[u8] = if head.starts_with("GET /final") {
            OK
        } else if head.starts_with("GET /once") {
            b"HTTP/1.1 301 Moved\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n"
        };
        let _ = s.write_all(resp).await;
    })
    .await;
    let r =
        check(&site(&format!("url: 'http://{addr}/loop', follow_redirects: true, max_redirects: 3"))).await;
    assert_eq!(kind(&r), Some(FailureKind::RedirectLimit), "{r:?}");
    let r = check(&site(&format!("url: 'http://{addr}/once', follow_redirects: true"))).await;
    assert!(r.is_up(), "{r:?}");
    assert_eq!((r.status_code, r.body_bytes), (Some(200), Some(2)));
    // Not following: the 302 itself is the answer, and 3xx counts as up by default.
    let r = check(&site(&format!("url: 'http://{addr}/loop'"))).await;
    assert_eq!((r.status_code, r.is_up()), (Some(302), true), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_to_a_self_signed_https_site_fails_tls() {
    let https = tls::serve(&tls::self_signed(), OK).await;
    let location: &'static str = Box::leak(format!("https://127.0.0.1:{}/", https.port()).into_boxed_str());
    let addr = raw::serve(move |mut s| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(
                format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            )
            .await;
    })
    .await;
    let r = check(&site(&format!("url: 'http://{addr}/', follow_redirects: true"))).await;
    assert_eq!(kind(&r), Some(FailureKind::Tls), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_verified_by_default() {
    let pki = tls::Pki::new();
    let ca = pki.ca_file.display().to_string();
    for (what, leaf) in
        [("expired", pki.expired()), ("wrong host", pki.wrong_host()), ("self-signed", tls::self_signed())]
    {
        let addr = tls::serve(&leaf, OK).await;
        let r =
            check(&site(&format!("url: 'https://127.0.0.1:{}/', tls_ca_file: '{ca}'", addr.port()))).await;
        assert_eq!(kind(&r), Some(FailureKind::Tls), "{what}: {r:?}");
        assert!(r.error.as_deref().is_some_and(|e| e.starts_with("tls handshake failed")), "{what}: {r:?}");
    }
    // Opting out per site accepts the self-signed certificate.
    let addr = tls::serve(&tls::self_signed(), OK).await;
    let r = check(&site(&format!("url: 'https://127.0.0.1:{}/', tls_verify: false", addr.port()))).await;
    assert!(r.is_up(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_tls_records_handshake_time_and_expiry() {
    let pki = tls::Pki::new();
    let addr = tls::serve(&pki.valid(), OK).await;
    let ca = pki.ca_file.display();
    let r = check(&site(&format!("url: 'https://localhost:{}/', tls_ca_file: '{ca}'", addr.port()))).await;
    assert!(r.is_up(), "{r:?}");
    let (y, m, d) = tls::VALID_NOT_AFTER;
    assert_eq!(r.tls_not_after, Some(Utc.with_ymd_and_hms(y, m.into(), d.into(), 0, 0, 0).unwrap()));
    assert!(
        r.dns_us.is_some() && r.connect_us.is_some() && r.tls_us.is_some() && r.ttfb_us.is_some(),
        "{r:?}"
    );
    assert_eq!(r.http_version.as_deref(), Some("HTTP/1.1"));
    // A certificate near its expiry is still a successful check: the expiry is data (the
    // consumer's CERT_EXPIRING judges it), not a failure.
    let soon = tls::serve(&pki.expiring_in(3), OK).await;
    let r = check(&site(&format!("url: 'https://localhost:{}/', tls_ca_file: '{ca}'", soon.port()))).await;
    assert!(r.is_up(), "{r:?}");
    let left = r.tls_not_after.unwrap() - Utc::now();
    assert!(left > chrono::Duration::days(2) && left <= chrono::Duration::days(3), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_mid_response_is_a_protocol_failure() {
    let addr = raw::serve(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial").await;
        let _ = s.flush().await;
        let _ = s.set_zero_linger();
        drop(s); // RST instead of FIN
    })
    .await;
    let r = check(&site(&format!("url: 'http://{addr}/'"))).await;
    assert_eq!(kind(&r), Some(FailureKind::Protocol), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_and_unresolvable_name() {
    let closed = sites::closed_port();
    let port = closed.port;
    let r = check(&site(&format!("url: 'http://127.0.0.1:{port}/'"))).await;
    assert_eq!(kind(&r), Some(FailureKind::Connect), "{r:?}");
    assert!(r.connect_us.is_none() && r.dns_us.is_none());
    // RFC 6761: .invalid never resolves.
    let r = check(&site("url: 'http://sitemon-test.invalid/'")).await;
    assert_eq!(kind(&r), Some(FailureKind::Dns), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn regex_matches_bytes_of_a_non_utf8_body() {
    let addr = raw::serve(|mut s| async move {
        answer(&mut s, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n\xff\xfe status OK\xc3").await;
    })
    .await;
    let r = check(&site(&format!("url: 'http://{addr}/', pattern: 'status OK'"))).await;
    assert!(r.is_up(), "{r:?}");
    assert_eq!(r.pattern_matched, Some(true));
    let r = check(&site(&format!("url: 'http://{addr}/', pattern: 'status DOWN'"))).await;
    assert_eq!(kind(&r), Some(FailureKind::PatternNotFound), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_response_header_is_a_protocol_failure() {
    let addr = raw::serve(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Huge: ").await;
        let _ = s.write_all(&vec![b'h'; 2 * 1024 * 1024]).await;
        let _ = s.write_all(b"\r\n\r\n").await;
    })
    .await;
    let r = check(&site(&format!("url: 'http://{addr}/'"))).await;
    assert_eq!(kind(&r), Some(FailureKind::Protocol), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn http10_and_bodiless_answers_are_fine() {
    let http10 =
        raw::serve(|mut s| async move { answer(&mut s, b"HTTP/1.0 200 OK\r\n\r\nold but fine").await }).await;
    let r = check(&site(&format!("url: 'http://{http10}/', pattern: fine"))).await;
    assert!(r.is_up(), "{r:?}");
    assert_eq!(r.http_version.as_deref(), Some("HTTP/1.0"));
    assert_eq!(r.body_bytes, Some(12));

    for (code, resp) in [
        (204, &b"HTTP/1.1 204 No Content\r\n\r\n"[..]),
        (304, &b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"[..]),
    ] {
        let addr = raw::serve(move |mut s| async move { answer(&mut s, resp).await }).await;
        let r = check(&site(&format!("url: 'http://{addr}/'"))).await;
        assert!(r.is_up(), "{code}: {r:?}");
        assert_eq!((r.status_code, r.body_bytes), (Some(code), Some(0)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_instead_of_http_is_a_protocol_failure() {
    let addr = raw::serve(|mut s| async move { answer(&mut s, b"SSH-2.0-OpenSSH_9.0\r\n\r\n").await }).await;
    let r = check(&site(&format!("url: 'http://{addr}/'"))).await;
    assert_eq!(kind(&r), Some(FailureKind::Protocol), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn method_headers_and_body_reach_the_server() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let addr = raw::serve(move |mut s| {
        let tx = tx.clone();
        async move {
            let head = read_head(&mut s).await;
            let mut body = [0u8; 9];
            let _ = tokio::io::AsyncReadExt::read_exact(&mut s, &mut body).await;
            let _ = tx.send(format!("{head}{}", String::from_utf8_lossy(&body)));
            let _ = s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n").await;
        }
    })
    .await;
    let r = check(&site(&format!(
        "url: 'http://{addr}/api?x=1', method: post, body: 'ping=pong', headers: {{Authorization: 'Bearer s3cret', Content-Type: application/x-www-form-urlencoded}}, expected_status: [201]"
    )))
    .await;
    assert!(r.is_up(), "{r:?}");
    let seen = rx.recv().await.unwrap();
    assert!(seen.starts_with("POST /api?x=1 HTTP/1.1\r\n"), "{seen}");
    assert!(seen.to_lowercase().contains("authorization: bearer s3cret"), "{seen}");
    assert!(seen.ends_with("ping=pong"), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_site_gets_its_own_tls_verification_whatever_the_probe_was_built_for() {
    let addr = tls::serve(&tls::self_signed(), OK).await;
    let url = format!("https://127.0.0.1:{}/", addr.port());
    let strict = site(&format!("url: '{url}', tls_verify: true"));
    let lax = site(&format!("url: '{url}', tls_verify: false"));
    // The probe prepares TLS for the sites it is given; a site it was not given must still be
    // checked with its own setting, never another site's or the default.
    let built_for: [(&str, Vec<Site>); 5] = [
        ("no sites", vec![]),
        ("the strict site", vec![strict.clone()]),
        ("the lax site", vec![lax.clone()]),
        ("strict then lax", vec![strict.clone(), lax.clone()]),
        ("lax then strict", vec![lax.clone(), strict.clone()]),
    ];
    for (what, prepared) in &built_for {
        // Both orders of checking, on one probe: no setting may leak into the next check.
        for order in [[&strict, &lax], [&lax, &strict]] {
            let probe = HyperProbe::new("test", prepared).unwrap();
            for s in order {
                let r = probe.check(s, Utc::now()).await;
                if s.tls.verify {
                    assert_eq!(kind(&r), Some(FailureKind::Tls), "built for {what}, tls_verify: true: {r:?}");
                } else {
                    assert!(r.is_up(), "built for {what}, tls_verify: false: {r:?}");
                }
            }
        }
    }
}

/// A local server that records every request (head, body) before answering `respond(head)`;
/// a check has therefore been recorded by the time it returns.
async fn recording<F>(respond: F) -> (SocketAddr, mpsc::UnboundedReceiver<(String, Vec<u8>)>)
where
    F: Fn(&str) -> Vec<u8> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let respond = Arc::new(respond);
    let addr = raw::serve(move |mut s| {
        let (tx, respond) = (tx.clone(), respond.clone());
        async move {
            let (head, body) = read_request(&mut s).await;
            let answer = respond(&head);
            let _ = tx.send((head, body));
            let _ = s.write_all(&answer).await;
        }
    })
    .await;
    (addr, rx)
}

/// Everything recorded so far.
fn drain(rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn redirect(code: u16, location: &str) -> Vec<u8> {
    format!("HTTP/1.1 {code} Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// Credentials in every form the brief names: the standard ones and a custom API key header.
const CREDENTIALS: &str = "headers: {Authorization: 'Bearer s3cret-token', Cookie: 'session=c00kie-value', Proxy-Authorization: 'Basic cHJveHktc2VjcmV0', X-Api-Key: k3y-value}";
const SECRETS: [&str; 8] = [
    "authorization:",
    "cookie:",
    "proxy-authorization:",
    "x-api-key:",
    "s3cret-token",
    "c00kie-value",
    "cHJveHktc2VjcmV0",
    "k3y-value",
];

/// The credential names and values found in a request head.
fn credentials_in(head: &str) -> Vec<&'static str> {
    SECRETS.into_iter().filter(|s| head.to_lowercase().contains(&s.to_lowercase())).collect()
}

/// The request line of each recorded request.
fn lines(reqs: &[(String, Vec<u8>)]) -> Vec<&str> {
    reqs.iter().map(|(h, _)| h.lines().next().unwrap_or_default()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_follow_redirects_only_within_the_sites_origin() {
    let home_cell: Arc<OnceLock<SocketAddr>> = Arc::new(OnceLock::new());
    let (other, mut at_other) = recording({
        let home = home_cell.clone();
        move |head| {
            if head.starts_with("GET /bounce ") {
                redirect(302, &format!("http://{}/back", home.get().unwrap()))
            } else {
                OK.to_vec()
            }
        }
    })
    .await;
    let (home, mut at_home) = recording({
        let home = home_cell.clone();
        move |head| {
            let path = head.split(' ').nth(1).unwrap_or_default();
            match path {
                "/same" => redirect(302, "/final"),
                // Another port on the same host is another origin, and so is another host name
                // for the same address, and another scheme.
                "/other-port" => redirect(302, &format!("http://{other}/landing")),
                "/other-host" => {
                    redirect(301, &format!("http://localhost:{}/final", home.get().unwrap().port()))
                }
                "/bounce" => redirect(302, &format!("http://{other}/bounce")),
                _ => OK.to_vec(),
            }
        }
    })
    .await;
    home_cell.set(home).unwrap();
    let check_path = |path: &'static str| {
        check_owned(site(&format!("url: 'http://{home}{path}', follow_redirects: true, {CREDENTIALS}")))
    };

    // Same origin: every hop carries the credentials.
    let r = check_path("/same").await;
    assert!(r.is_up(), "{r:?}");
    let reqs = drain(&mut at_home);
    assert_eq!(lines(&reqs), ["GET /same HTTP/1.1", "GET /final HTTP/1.1"]);
    for (head, _) in &reqs {
        assert_eq!(credentials_in(head), SECRETS, "same-origin hop lost credentials:\n{head}");
    }

    // Another port: the first hop has them, the other origin gets none.
    let r = check_path("/other-port").await;
    assert!(r.is_up(), "{r:?}");
    assert_eq!(credentials_in(&drain(&mut at_home)[0].0), SECRETS);
    let away = drain(&mut at_other);
    assert_eq!(lines(&away), ["GET /landing HTTP/1.1"]);
    assert_eq!(credentials_in(&away[0].0), Vec::<&str>::new(), "leaked to {other}:\n{}", away[0].0);

    // Another host name on the same port.
    let r = check_path("/other-host").await;
    assert!(r.is_up(), "{r:?}");
    let reqs = drain(&mut at_home);
    assert_eq!(lines(&reqs), ["GET /other-host HTTP/1.1", "GET /final HTTP/1.1"]);
    assert!(reqs[1].0.contains("host: localhost:"), "{}", reqs[1].0);
    assert_eq!(credentials_in(&reqs[1].0), Vec::<&str>::new(), "leaked to localhost:\n{}", reqs[1].0);

    // Sent away and back: the way back was chosen by the other host, so still no credentials.
    let r = check_path("/bounce").await;
    assert!(r.is_up(), "{r:?}");
    let reqs = drain(&mut at_home);
    assert_eq!(lines(&reqs), ["GET /bounce HTTP/1.1", "GET /back HTTP/1.1"]);
    assert_eq!(credentials_in(&reqs[1].0), Vec::<&str>::new(), "resent after leaving:\n{}", reqs[1].0);
    assert_eq!(credentials_in(&drain(&mut at_other)[0].0), Vec::<&str>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_307_or_308_resends_the_body_only_to_the_same_origin() {
    let (other, mut at_other) = recording(|_| OK.to_vec()).await;
    let (home, mut at_home) = recording(move |head| {
        let path = head.split(' ').nth(1).unwrap_or_default();
        let code = if path.starts_with("/308") { 308 } else { 307 };
        if path.ends_with("/same") {
            redirect(code, "/echo")
        } else if path.ends_with("/away") {
            redirect(code, &format!("http://{other}/echo"))
        } else {
            OK.to_vec()
        }
    })
    .await;
    for code in [307, 308] {
        let post = |to: &str| {
            site(&format!(
                "url: 'http://{home}/{code}/{to}', method: POST, body: 'user=probe&password=b0dy-secret', follow_redirects: true, {CREDENTIALS}"
            ))
        };
        let r = check_owned(post("same")).await;
        assert!(r.is_up(), "{code} same origin: {r:?}");
        let reqs = drain(&mut at_home);
        assert_eq!(lines(&reqs), [format!("POST /{code}/same HTTP/1.1"), "POST /echo HTTP/1.1".to_owned()]);
        assert_eq!(reqs[1].1, b"user=probe&password=b0dy-secret", "{code}: body not resent");
        assert_eq!(credentials_in(&reqs[1].0), SECRETS);

        let r = check_owned(post("away")).await;
        assert_eq!(kind(&r), Some(FailureKind::RedirectLimit), "{code} to another origin: {r:?}");
        assert!(r.error.as_deref().is_some_and(|e| e.contains("another origin")), "{r:?}");
        assert_eq!(r.status_code, Some(code));
        assert_eq!(drain(&mut at_home).len(), 1);
        assert!(drain(&mut at_other).is_empty(), "{code}: the other origin was contacted");
    }
    // Without a body there is nothing to protect but the headers: followed, without them.
    let r =
        check_owned(site(&format!("url: 'http://{home}/307/away', follow_redirects: true, {CREDENTIALS}")))
            .await;
    assert!(r.is_up(), "{r:?}");
    let away = drain(&mut at_other);
    assert_eq!(lines(&away), ["GET /echo HTTP/1.1"]);
    assert_eq!(credentials_in(&away[0].0), Vec::<&str>::new(), "{}", away[0].0);
}
