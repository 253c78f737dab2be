//! Registering the schemas sitemon writes with a schema registry at start: the check-result
//! schema (producer) and the incident-event schema (consumer), each under `<topic>-value`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{RegistryClient, RegistryError};
use crate::retry::{self, Failure, OnStop};

/// A schema sitemon writes with: its file (for messages) and its text.
pub struct WriterSchema {
    file: &'static str,
    json: &'static str,
}

pub const CHECK_RESULT_SCHEMA: WriterSchema =
    WriterSchema { file: "schemas/check_result.avsc", json: crate::wire::CURRENT_SCHEMA_JSON };
pub const EVENT_SCHEMA: WriterSchema =
    WriterSchema { file: "schemas/incident_event.avsc", json: crate::wire::EVENT_SCHEMA_JSON };

/// Registers `schema` under `<topic>-value` (Confluent's TopicNameStrategy) and returns its id.
/// An unreachable registry is asked again with backoff until it answers or a stop signal comes
/// (`None`); any refusal (incompatible, invalid, unauthorised) is an error: the producer ends
/// before a single check runs, the consumer stops (exit 1).
pub async fn register_schema(
    registry: &RegistryClient,
    topic: &str,
    schema: WriterSchema,
    stop: &CancellationToken,
) -> anyhow::Result<Option<u32>> {
    let subject = format!("{topic}-value");
    let subject = subject.as_str();
    let attempt = || async move {
        registry.register(subject, schema.json).await.map_err(|e| match e.is_transient() {
            true => Failure::Transient(e),
            false => Failure::Permanent(e),
        })
    };
    let warn = |e: &RegistryError, retry_in: Duration| tracing::warn!(error = %e, subject, ?retry_in, "registering the schema failed; retrying");
    match retry::until_stopped(stop, OnStop::CutAttempt, attempt, warn).await {
        None => Ok(None),
        Some(Ok(id)) => {
            tracing::info!(subject, schema_id = id, registry = registry.url(), "schema registered");
            Ok(Some(id))
        }
        Some(Err(e @ RegistryError::Incompatible(_))) => Err(anyhow::Error::new(e).context(format!(
            "schema registry {} refused {} under subject `{subject}`",
            registry.url(),
            schema.file
        ))),
        Some(Err(e)) => Err(anyhow::Error::new(e).context(format!(
            "registering {} under `{subject}` at {}",
            schema.file,
            registry.url()
        ))),
    }
}
