//! Deliveries as they are kept and sent: a planned message with its request body ready (secrets
//! are added by the sender, never stored), one claimed for sending, and what the provider's
//! answer means.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

/// The request shape a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Webhook,
    Slack,
    PagerDuty,
    Email,
}

/// A message planned for one provider, recorded before the events' offsets move.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub delivery_id: Uuid,
    pub route: String,
    pub provider: String,
    /// The incident (or storm) it is about: a provider gets one subject's messages in order.
    pub subject: Uuid,
    pub site_id: Option<String>,
    /// `incident.opened`, `incident.closed`, `incident.reminder`, `storm.started`, …
    pub kind: &'static str,
    /// The request body, without the provider's secrets.
    pub body: Value,
    /// Held back by this maintenance window or silence: recorded, never sent.
    pub silenced: Option<String>,
}

/// A delivery leased for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub seq: i64,
    pub delivery_id: Uuid,
    pub provider: String,
    pub body: Value,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// The claim's own token: its answer is recorded only while it still holds the delivery.
    pub lease: Uuid,
}

/// The newest delivery about an incident, for `sitemon status`.
#[derive(Debug, Clone, PartialEq)]
pub struct LastDelivery {
    pub subject: Uuid,
    pub provider: String,
    /// `PENDING`, `SENT`, `FAILED` or `SILENCED`.
    pub state: String,
    /// When it was sent, else when it was planned.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// What the provider's answer (or its silence) means for the delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted (2xx).
    Sent { answer: String },
    /// Not now: 429 (after its `Retry-After`), 5xx, a timeout, a refused connection.
    Retry { after: Duration, answer: String },
    /// Refused for good (4xx other than 408 and 429): recorded with the answer, never retried.
    Failed { answer: String },
}

impl Outcome {
    pub fn state(&self) -> &'static str {
        match self {
            Outcome::Sent { .. } => "SENT",
            Outcome::Retry { .. } => "PENDING",
            Outcome::Failed { .. } => "FAILED",
        }
    }

    pub fn answer(&self) -> &str {
        match self {
            Outcome::Sent { answer } | Outcome::Retry { answer, .. } | Outcome::Failed { answer } => answer,
        }
    }
}

/// Backoff before retry number `attempt` (1-based) after a failure with no `Retry-After`: 1 s
/// doubling up to 5 minutes, with up to a quarter of jitter (`jitter` in 0..1) so that many
/// deliveries failing together do not come back together.
pub fn backoff(attempt: i32, jitter: f64) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1) as u32);
    let capped = base.min(Duration::from_secs(300));
    capped.mul_f64(1.0 + 0.25 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_bounded_jitter() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(4, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(30, 0.0), Duration::from_secs(300));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(5));
        assert_eq!(backoff(0, 0.0), Duration::from_secs(1), "a first try counts as the first");
    }
}
