//! [`RegistryClient`]: registers sitemon's schema under a subject (`POST
//! /subjects/{subject}/versions`) and fetches writer schemas by id (`GET /schemas/ids/{id}`), the
//! only two calls sitemon makes, through schema_registry_converter's async client.

use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::{SrSettings, get_schema_by_id, post_schema};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{RawError, SchemaType, SuppliedSchema};

use crate::config::SchemaRegistryConfig;
use crate::ports::{SchemaLookup, SchemaLookupError};

/// How long one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the registry said, in sitemon's terms. Messages hold the registry's answer and the URL
/// (which cannot carry credentials: the config refuses them there), never the password.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the schema registry cannot be reached: {0}")]
    Unavailable(String),
    #[error(
        "the schema registry refused the schema as incompatible with the subject's earlier versions: {0}"
    )]
    Incompatible(String),
    #[error("the schema registry refused the schema as invalid: {0}")]
    Invalid(String),
    #[error("the schema registry answered with an error: {0}")]
    Refused(String),
    #[error("setting up the schema registry client: {0}")]
    Setup(String),
}

impl RegistryError {
    /// Worth asking again later (not reachable, or a server-side failure).
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable(_))
    }
}

/// The registry's error answer (`{error_code, message}`) if it gave one.
fn answer(e: &SRCError) -> Option<&RawError> {
    std::error::Error::source(e).and_then(|s| s.downcast_ref::<RawError>())
}

fn classify(e: &SRCError) -> RegistryError {
    let Some(raw) = answer(e) else {
        // No answer (connection refused, timeout, TLS) or one that was not the registry's JSON.
        return RegistryError::Unavailable(format!(
            "{}: {}",
            e.error,
            e.cause.as_deref().unwrap_or("no cause")
        ));
    };
    let text = format!("{} (error_code {})", raw.message, raw.error_code);
    match raw.error_code {
        409 => RegistryError::Incompatible(text),
        42201 | 422 => RegistryError::Invalid(text),
        // 50001-50003 (store, timeout, forwarding), 503 from a proxy, or no JSON at all (0).
        c if c == 0 || (500..600).contains(&c) || (50000..60000).contains(&c) => {
            RegistryError::Unavailable(text)
        }
        _ => RegistryError::Refused(text),
    }
}

pub struct RegistryClient {
    settings: SrSettings,
    url: String,
}

impl RegistryClient {
    /// Builds the client; nothing is contacted yet. Basic authentication goes only to `url`.
    pub fn new(cfg: &SchemaRegistryConfig) -> Result<Self, RegistryError> {
        let mut builder = SrSettings::new_builder(cfg.url.clone());
        builder.set_timeout(REQUEST_TIMEOUT);
        if let Some(user) = &cfg.username {
            builder.set_basic_authorization(user, cfg.password.as_ref().map(|p| p.expose()));
        }
        let settings = builder.build().map_err(|e| RegistryError::Setup(e.error))?;
        Ok(RegistryClient { settings, url: cfg.url.clone() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers `schema` (Avro JSON) under `subject` and returns its id. Registering a schema
    /// the subject already has returns the id it has.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned());
        post_schema(&self.settings, subject.to_owned(), supplied)
            .await
            .map(|r| r.id)
            .map_err(|e| classify(&e))
    }
}

impl SchemaLookup for RegistryClient {
    async fn schema_by_id(&self, id: u32) -> Result<String, SchemaLookupError> {
        match get_schema_by_id(id, &self.settings).await {
            Ok(s) if s.schema_type == SchemaType::Avro => Ok(s.schema),
            Ok(s) => Err(SchemaLookupError::Unknown {
                id,
                message: format!("not an Avro schema but {:?}", s.schema_type),
            }),
            Err(e) => match answer(&e) {
                // 40403: schema not found.
                // 40403 is the common code; a registry (or proxy) answering a bare 404 with the
                // registry's JSON error body means the same. Refusals (401/403) are retried:
                // a credential fixed by the operator lets the batch through, nothing is lost.
                Some(raw) if matches!(raw.error_code, 40403 | 404) => Err(SchemaLookupError::Unknown {
                    id,
                    message: format!("{} (error_code {})", raw.message, raw.error_code),
                }),
                _ => Err(SchemaLookupError::Unavailable(classify(&e).into())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_registry_answers() {
        let raw = |code: u32| {
            let body = format!(r#"{{"error_code":{code},"message":"m"}}"#);
            let raw: RawError = serde_json::from_str(&body).unwrap();
            SRCError::non_retryable_with_cause(raw, "HTTP request to schema registry failed")
        };
        assert!(matches!(classify(&raw(409)), RegistryError::Incompatible(_)));
        assert!(matches!(classify(&raw(42201)), RegistryError::Invalid(_)));
        assert!(matches!(classify(&raw(50001)), RegistryError::Unavailable(_)));
        assert!(matches!(classify(&raw(40101)), RegistryError::Refused(_)));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(classify(&SRCError::retryable_with_cause(io, "unreachable")).is_transient());
    }
}
