//! [`HttpSender`]: the webhook, Slack and PagerDuty providers of `sitemon notify`, all JSON
//! POSTs over HTTP (reqwest: pooled connections, a timeout per request, TLS verified). Every
//! request carries the delivery id as `Idempotency-Key`, so a receiver that deduplicates sees a
//! repeat (after a crash mid-request) once. The URL, headers and routing key are secrets: the
//! answers recorded never quote them, and a redirect is not followed (credentials never go to
//! another origin).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::config::{ProviderConfig, ProviderKind, Secret};
use crate::notify::{Claimed, Outcome, backoff};
use crate::ports::Sender;

/// Longest `Retry-After` honoured; a provider asking for more is asked again after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How much of an answer's body is kept.
const ANSWER_BYTES: usize = 512;

pub struct HttpSender {
    client: reqwest::Client,
    url: Secret,
    headers: Vec<(String, Secret)>,
    routing_key: Option<Secret>,
}

impl HttpSender {
    pub fn new(p: &ProviderConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(p.timeout)
            .connect_timeout(p.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sitemon/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let (headers, routing_key) = match &p.kind {
            ProviderKind::Webhook { headers } => (headers.clone(), None),
            // (Email goes through `EmailSender`.)
            ProviderKind::Slack | ProviderKind::Email(_) => (Vec::new(), None),
            ProviderKind::PagerDuty { routing_key } => (Vec::new(), Some(routing_key.clone())),
        };
        Ok(HttpSender { client, url: p.url.clone(), headers, routing_key })
    }
}

impl HttpSender {
    /// The answer without any of this provider's secrets (a receiver may echo the request).
    fn redact(&self, text: String) -> String {
        let secrets = std::iter::once(&self.url)
            .chain(self.headers.iter().map(|(_, v)| v))
            .chain(self.routing_key.as_ref());
        super::redact::Redactor::new(secrets.map(Secret::expose)).apply(&text)
    }
}

/// A number in 0..1 from the delivery and its attempt: spreads retries without a random source.
fn jitter(d: &Claimed) -> f64 {
    let bits = d.delivery_id.as_u128().rotate_left(d.attempts.unsigned_abs() % 128);
    (bits & 0xffff) as f64 / 65_535.0
}

/// `Retry-After` in seconds or as an HTTP date, bounded.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            (DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc) - now).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What an HTTP answer means for the delivery.
pub fn outcome(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    d: &Claimed,
    now: DateTime<Utc>,
) -> Outcome {
    let mut text = body.trim().to_owned();
    if text.len() > ANSWER_BYTES {
        let mut cut = ANSWER_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let answer = if text.is_empty() { status.to_string() } else { format!("{status}: {text}") };
    if status.is_success() {
        Outcome::Sent { answer }
    } else if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        let after = retry_after(headers, now).unwrap_or_else(|| backoff(d.attempts, jitter(d)));
        Outcome::Retry { after, answer }
    } else {
        Outcome::Failed { answer }
    }
}

impl Sender for HttpSender {
    async fn send(&self, d: &Claimed) -> Outcome {
        let mut body = d.body.clone();
        if let (Some(key), Some(obj)) = (&self.routing_key, body.as_object_mut()) {
            obj.insert("routing_key".into(), key.expose().into());
        }
        let mut req = self
            .client
            .post(self.url.expose())
            .header("Idempotency-Key", d.delivery_id.to_string())
            .json(&body);
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), value.expose());
        }
        match req.send().await {
            Ok(resp) => {
                let (status, headers) = (resp.status(), resp.headers().clone());
                let text = self.redact(resp.text().await.unwrap_or_default());
                outcome(status, &headers, &text, d, Utc::now())
            }
            // Never the URL: it may be the credential (a Slack webhook).
            Err(e) => {
                let e = e.without_url();
                let what = if e.is_timeout() {
                    "no answer within the timeout".to_owned()
                } else if e.is_connect() {
                    format!("cannot connect: {}", crate::error_chain::Chain(&e))
                } else {
                    crate::error_chain::Chain(&e).to_string()
                };
                Outcome::Retry { after: backoff(d.attempts, jitter(d)), answer: what }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use reqwest::header::HeaderValue;

    fn claimed() -> Claimed {
        Claimed {
            seq: 1,
            delivery_id: uuid::Uuid::from_u128(42),
            provider: "p".into(),
            body: serde_json::json!({}),
            attempts: 1,
            lease: uuid::Uuid::nil(),
        }
    }

    #[test]
    fn answers_mean_sent_retry_or_failed() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 8, 0, 0).unwrap();
        let none = HeaderMap::new();
        let d = claimed();
        assert!(matches!(outcome(StatusCode::ACCEPTED, &none, "", &d, now), Outcome::Sent { .. }));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            outcome(StatusCode::TOO_MANY_REQUESTS, &h, "slow down", &d, now),
            Outcome::Retry {
                after: Duration::from_secs(7),
                answer: "429 Too Many Requests: slow down".into()
            }
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("Fri, 04 Dec 2026 08:00:30 GMT"));
        assert!(matches!(outcome(StatusCode::SERVICE_UNAVAILABLE, &h, "", &d, now),
            Outcome::Retry { after, .. } if after == Duration::from_secs(30)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert!(matches!(outcome(StatusCode::TOO_MANY_REQUESTS, &h, "", &d, now),
            Outcome::Retry { after, .. } if after == MAX_RETRY_AFTER));
        assert!(matches!(
            outcome(StatusCode::INTERNAL_SERVER_ERROR, &none, "", &d, now),
            Outcome::Retry { .. }
        ));
        assert_eq!(
            outcome(StatusCode::BAD_REQUEST, &none, "invalid routing key", &d, now),
            Outcome::Failed { answer: "400 Bad Request: invalid routing key".into() }
        );
        assert!(
            matches!(outcome(StatusCode::FOUND, &none, "", &d, now), Outcome::Failed { .. }),
            "no redirect followed"
        );
        let long = "x".repeat(5000);
        assert!(outcome(StatusCode::BAD_REQUEST, &none, &long, &d, now).answer().len() < 600);
    }

    #[test]
    fn an_echoed_secret_is_not_kept_in_the_answer() {
        let p = ProviderConfig {
            name: "pd".into(),
            kind: ProviderKind::PagerDuty { routing_key: Secret::new("R0UT3K3Y") },
            url: Secret::new("https://events.test/v2/enqueue"),
            timeout: Duration::from_secs(1),
            spacing: None,
        };
        let sender = HttpSender::new(&p).unwrap();
        let echoed =
            sender.redact(r#"{"routing_key":"R0UT3K3Y","url":"https://events.test/v2/enqueue"}"#.into());
        assert_eq!(echoed, r#"{"routing_key":"***","url":"***"}"#);
    }
}
