//! The `sites` and `defaults` sections: every site checked field by field.

use std::time::Duration;

use regex::bytes::RegexBuilder;
use serde_yaml_ng::Value;
use url::Url;

use super::Secret;
use super::reader::{Fields, Reader, join};
use std::sync::Arc;

use crate::domain::{ExpectedStatus, MAX_REGIONS, Site, SiteOptions, SiteUrl, Thresholds, TlsOptions};

const DEFAULTS: &[&str] = &[
    "interval",
    "timeout",
    "expected_status",
    "down_after",
    "up_after",
    "quorum",
    "degraded_above",
    "cert_warn_days",
];
/// The options of one site, in `sites:` items, YAML site files and CSV header rows.
pub(super) const SITE_FIELDS: &[&str] = &[
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
    "down_after",
    "up_after",
    "quorum",
    "degraded_above",
    "cert_warn_days",
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
const DEFAULT_MAX_REDIRECTS: u64 = 5;
pub(super) const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest interval: slot arithmetic (µs since the epoch, phase below the interval) stays
/// far inside the calendar's range.
const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);
/// The shortest interval (a shorter one would be a flood of slots, or none at all below a µs).
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Compiled-regex size cap, so a hostile pattern cannot take the producer's memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The `defaults:` section: what a site that does not say gets.
#[derive(Debug, Clone)]
pub struct SiteDefaults {
    interval: Duration,
    timeout: Duration,
    expected_status: ExpectedStatus,
    thresholds: Thresholds,
}

impl Default for SiteDefaults {
    fn default() -> Self {
        SiteDefaults {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            expected_status: ExpectedStatus::SuccessOrRedirect,
            thresholds: Thresholds::default(),
        }
    }
}

pub fn read_defaults(r: &mut Reader, top: &Fields) -> SiteDefaults {
    let mut d = SiteDefaults::default();
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
    d.thresholds = read_thresholds(r, &f, d.thresholds);
    d
}

/// `down_after`, `up_after`, `quorum`, `degraded_above` and `cert_warn_days` of a site or of the
/// defaults, over `base`.
fn read_thresholds(r: &mut Reader, f: &Fields, base: Thresholds) -> Thresholds {
    let mut t = base;
    if let Some(n) = f.get("down_after").and_then(|(v, p)| r.uint(v, &p, 1, 1000)) {
        t.down_after = n as u32;
    }
    if let Some(n) = f.get("up_after").and_then(|(v, p)| r.uint(v, &p, 1, 1000)) {
        t.up_after = n as u32;
    }
    if let Some(n) = f.get("quorum").and_then(|(v, p)| quorum(r, v, &p)) {
        t.quorum = Some(n);
    }
    if let Some((v, p)) = f.get("degraded_above")
        && let Some(d) = r.duration(v, &p)
    {
        if d < Duration::from_millis(1) {
            r.problem(&p, "must be at least 1ms (it is compared in whole milliseconds)");
        } else {
            t.degraded_above_ms = Some(u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
        }
    }
    if let Some(n) = f.get("cert_warn_days").and_then(|(v, p)| r.uint(v, &p, 0, 3650)) {
        t.cert_warn_days = n as u32;
    }
    t
}

/// A quorum the consumer can reach: at most [`MAX_REGIONS`] regions are tracked per site, so a
/// larger one could never open a site-wide incident.
fn quorum(r: &mut Reader, v: &Value, path: &str) -> Option<u32> {
    let n = r.uint(v, path, 1, u64::from(u32::MAX))?;
    if n > MAX_REGIONS as u64 {
        r.problem(
            path,
            format!(
                "{n} is out of range 1..={MAX_REGIONS}: at most {MAX_REGIONS} regions are tracked per site, so {n} could never agree"
            ),
        );
        return None;
    }
    Some(n as u32)
}

/// The valid sites of the inline `sites:` list, each with its index in the list (problems go to
/// `r`). Names are checked for duplicates once the whole list (with a `sites_file`'s) is read:
/// [`later_duplicates`].
pub fn read_sites(r: &mut Reader, v: &Value, path: &str, d: &SiteDefaults) -> (Vec<Site>, Vec<u32>) {
    let Some(items) = r.list(v, path) else { return Default::default() };
    if items.is_empty() {
        r.problem(path, "the site list is empty; add at least one site");
    }
    let mut pool = OptionsPool::default();
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| Some((read_site(r, item, &format!("{path}[{i}]"), d, &mut pool)?, i as u32)))
        .unzip()
}

/// Indices of the sites whose name an earlier site already has, in order. Sorts indices rather
/// than hashing names, so a million sites cost 4 MB here, not a copy of every name.
pub fn later_duplicates(sites: &[Site]) -> Vec<usize> {
    let mut order: Vec<u32> = (0..sites.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| sites[a as usize].id.cmp(&sites[b as usize].id).then(a.cmp(&b)));
    let mut dups: Vec<usize> = order
        .windows(2)
        .filter(|w| sites[w[0] as usize].id == sites[w[1] as usize].id)
        .map(|w| w[1] as usize)
        .collect();
    dups.sort_unstable();
    dups
}

/// Shares one [`SiteOptions`] between consecutive sites that have the same (a large list mostly
/// repeats the defaults, or the options of its section of sites).
#[derive(Default)]
pub struct OptionsPool {
    last: Option<Arc<SiteOptions>>,
}

impl OptionsPool {
    fn share(&mut self, o: SiteOptions) -> Arc<SiteOptions> {
        match &self.last {
            Some(last) if **last == o => last.clone(),
            _ => self.last.insert(Arc::new(o)).clone(),
        }
    }
}

pub(super) fn read_site(
    r: &mut Reader,
    v: &Value,
    path: &str,
    d: &SiteDefaults,
    pool: &mut OptionsPool,
) -> Option<Site> {
    let f = r.fields(v, path, SITE_FIELDS)?;
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
                http::Method::from_bytes(m.as_bytes()).ok()
            } else {
                r.problem(&p, format!("`{m}` is not a supported method: use one of {}", METHODS.join(", ")));
                None
            }
        }),
        None => Some(http::Method::GET),
    };
    let interval = f.get("interval").map_or(Some(d.interval), |(v, p)| r.duration(v, &p)).filter(|i| {
        let fits = (MIN_INTERVAL..=MAX_INTERVAL).contains(i);
        if !fits {
            r.problem(
                &join(path, "interval"),
                "from 1ms to 366 days: slots are whole µs within the calendar",
            );
        }
        fits
    });
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
            Some(s) if s.len() > crate::domain::MAX_TEXT_BYTES || s.contains('\0') => {
                r.problem(
                    &p,
                    format!("a pattern holds at most {} bytes and no NUL", crate::domain::MAX_TEXT_BYTES),
                );
                None
            }
            Some(s) => match RegexBuilder::new(&s).size_limit(REGEX_SIZE_LIMIT).build() {
                Ok(re) => Some(Some(Box::new(re))),
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
        Some((v, p)) => read_headers(r, v, &p).map(Vec::into_boxed_slice),
        None => Some(Box::default()),
    };
    let body = f.get("body").map(|(v, p)| r.string(v, &p).map(String::into_boxed_str));
    let follow = f.get("follow_redirects").map_or(Some(false), |(v, p)| r.boolean(v, &p));
    let max_redirects =
        f.get("max_redirects").map_or(Some(DEFAULT_MAX_REDIRECTS), |(v, p)| r.uint(v, &p, 0, 50));
    let max_body =
        f.get("max_body_bytes").map_or(Some(DEFAULT_MAX_BODY), |(v, p)| r.byte_size(v, &p, 0, 1 << 30));
    let verify = f.get("tls_verify").map_or(Some(true), |(v, p)| r.boolean(v, &p));
    let ca_file = f
        .get("tls_ca_file")
        .map(|(v, p)| r.nonempty_string(v, &p).map(|s| std::path::PathBuf::from(s).into_boxed_path()));
    let thresholds = read_thresholds(r, &f, d.thresholds);
    let options = SiteOptions {
        thresholds,
        headers: headers?,
        body: body.map_or(Some(None), |b| b.map(Some))?,
        follow_redirects: follow?,
        max_redirects: max_redirects? as u32,
        max_body_bytes: max_body?,
        tls: TlsOptions { verify: verify?, ca_file: ca_file.map_or(Some(None), |c| c.map(Some))? },
        method: method?,
        pattern: pattern?,
        expected_status: expected_status?,
    };
    Some(Site {
        id: name?,
        url: SiteUrl::new(&url?),
        interval: interval?,
        timeout: timeout.filter(|t| interval.is_none_or(|i| *t <= i))?,
        options: pool.share(options),
    })
}

fn read_headers(r: &mut Reader, v: &Value, path: &str) -> Option<Vec<(String, Secret)>> {
    r.secret_map(v, path, "header", |name, value| {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            Err(format!("`{name}` is not a valid header name"))
        } else if http::HeaderValue::from_str(value).is_err() {
            Err("not a valid header value (control characters?)".to_owned())
        } else {
            Ok(())
        }
    })
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
    if text.len() > crate::domain::MAX_TEXT_BYTES {
        r.problem(
            path,
            format!("the url is {} bytes long; at most {}", text.len(), crate::domain::MAX_TEXT_BYTES),
        );
        return None;
    }
    match Url::parse(text.trim()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            r.problem(path, format!("scheme `{}` is not supported; use http or https", u.scheme()));
            None
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            r.problem(path, "the url has no host");
            None
        }
        // The url is published with every result and stored in clear: no credentials in it.
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            r.problem(
                path,
                "the url holds credentials (`user:password@`), which would be published and stored with every result; put credentials in a header, e.g. Authorization",
            );
            None
        }
        Ok(u) => Some(u),
        Err(e) => {
            r.problem(path, format!("`{}` is not a valid url: {e}", without_userinfo(text)));
            None
        }
    }
}

/// `text` with everything up to its last `@` masked (after a `scheme://`): an unparseable url is
/// echoed in its problem, and must not echo a password with it. A raw password may hold `/`, `?`
/// or `#`, so the authority cannot be trusted to end where a valid url's would: over-masking an
/// `@` in a path or query only shortens the echo.
fn without_userinfo(text: &str) -> String {
    match text.rfind('@') {
        Some(at) => {
            let keep = text.find("://").map_or(0, |i| i + 3).min(at);
            format!("{}***{}", &text[..keep], &text[at..])
        }
        None => text.to_owned(),
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
    codes.into_iter().collect::<Option<Box<[u16]>>>().map(ExpectedStatus::Codes)
}

#[cfg(test)]
mod tests {
    use super::without_userinfo;

    #[test]
    fn userinfo_is_masked_in_echoed_urls() {
        for (text, shown) in [
            ("http://u:hunter2@x:99999/", "http://***@x:99999/"),
            ("https://t0ken@h/", "https://***@h/"),
            ("http://u:pa#ss/w?rd@h:x/", "http://***@h:x/"),
            ("http:/u:hunter2@h:99999", "***@h:99999"),
            ("u:hunter2@h", "***@h"),
            ("http://x:99999/a", "http://x:99999/a"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(without_userinfo(text), shown, "{text}");
        }
    }
}
