//! [`EmailSender`]: the email provider of `sitemon notify`, over SMTP with lettre (STARTTLS
//! required or TLS from the first byte, certificates verified, the system's CAs plus an optional
//! `ca_file`; AUTH when a user is configured). Each message carries `Message-ID:
//! <delivery id@sitemon>`, so a repeat after a crash mid-send threads as the same message. A
//! 5xx answer is a permanent refusal; a 4xx, a timeout or a connection failure is tried again.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::redact::{Redactor, auth_plain};
use crate::config::{EmailConfig, Secret, SmtpTls};
use crate::notify::{Claimed, Outcome, backoff};
use crate::ports::Sender;

#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    #[error("reading ca_file {path}")]
    CaFile { path: String, source: std::io::Error },
    #[error("TLS settings")]
    Tls(#[source] lettre::transport::smtp::Error),
    #[error("an address")]
    Address(#[source] lettre::address::AddressError),
}

pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// Takes the password out of what a server answers (an echo of `AUTH`).
    redactor: Redactor,
}

impl EmailSender {
    pub fn new(c: &EmailConfig, timeout: Duration) -> Result<Self, EmailSetupError> {
        let mut params = TlsParameters::builder(c.host.clone());
        if let Some(path) = &c.ca_file {
            let pem = std::fs::read(path)
                .map_err(|source| EmailSetupError::CaFile { path: path.display().to_string(), source })?;
            params = params.add_root_certificate(Certificate::from_pem(&pem).map_err(EmailSetupError::Tls)?);
        }
        let params = params.build_native().map_err(EmailSetupError::Tls)?;
        let tls = match c.tls {
            SmtpTls::StartTls => Tls::Required(params),
            SmtpTls::Tls => Tls::Wrapper(params),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(c.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let from = c.from.parse().map_err(EmailSetupError::Address)?;
        let to =
            c.to.iter().map(|t| t.parse()).collect::<Result<_, _>>().map_err(EmailSetupError::Address)?;
        let password = c.password.as_ref().map(Secret::expose).unwrap_or_default();
        let mut redactor = Redactor::new([password]);
        if let Some(user) = c.username.as_deref().filter(|_| !password.is_empty()) {
            redactor = redactor.with(auth_plain(user, password));
        }
        Ok(EmailSender { transport: builder.build(), from, to, redactor })
    }

    fn message(&self, d: &Claimed) -> Result<Message, lettre::error::Error> {
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(d.body["subject"].as_str().unwrap_or("sitemon"))
            .message_id(Some(format!("<{}@sitemon>", d.delivery_id)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            m = m.to(to.clone());
        }
        m.body(d.body["text"].as_str().unwrap_or_default().to_owned())
    }

    /// An error as text, without the password (an echoing server).
    fn describe(&self, e: &(dyn std::error::Error + 'static)) -> String {
        self.redactor.apply(&crate::error_chain::Chain(e).to_string())
    }
}

impl Sender for EmailSender {
    async fn send(&self, d: &Claimed) -> Outcome {
        let message = match self.message(d) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Failed {
                    answer: format!("cannot build the message: {}", self.describe(&e)),
                };
            }
        };
        match self.transport.send(message).await {
            Ok(r) => Outcome::Sent {
                answer: format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" ")),
            },
            // A refusal for good (5xx); anything else (a 4xx, a lost connection, a server that
            // offered no STARTTLS this time) is tried again.
            Err(e) if e.is_permanent() => Outcome::Failed { answer: self.describe(&e) },
            Err(e) => {
                let jitter = (d.delivery_id.as_u128() & 0xffff) as f64 / 65_535.0;
                Outcome::Retry { after: backoff(d.attempts, jitter), answer: self.describe(&e) }
            }
        }
    }
}
