//! The providers of `sitemon notify`: [`HttpSender`] (webhook, Slack, PagerDuty) and
//! [`EmailSender`] (SMTP), and [`ProviderSender`], the one a provider's config calls for.

mod email;
mod http;
mod redact;

pub use email::EmailSender;
pub use http::{HttpSender, outcome, retry_after};

use crate::config::{ProviderConfig, ProviderKind};
use crate::notify::{Claimed, Outcome};
use crate::ports::Sender;

pub enum ProviderSender {
    Http(HttpSender),
    Email(Box<EmailSender>),
}

/// Why a provider's sender could not be made (its TLS settings, a CA file).
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("the HTTP client")]
    Http(#[source] reqwest::Error),
    #[error("the SMTP client")]
    Email(#[source] email::EmailSetupError),
}

impl ProviderSender {
    pub fn for_config(p: &ProviderConfig) -> Result<Self, ProviderSetupError> {
        match &p.kind {
            ProviderKind::Email(e) => EmailSender::new(e, p.timeout)
                .map(|s| ProviderSender::Email(Box::new(s)))
                .map_err(ProviderSetupError::Email),
            _ => HttpSender::new(p).map(ProviderSender::Http).map_err(ProviderSetupError::Http),
        }
    }
}

impl Sender for ProviderSender {
    async fn send(&self, d: &Claimed) -> Outcome {
        match self {
            ProviderSender::Http(s) => s.send(d).await,
            ProviderSender::Email(s) => s.send(d).await,
        }
    }
}
