//! The wire contract: check results as Avro (schemas/check_result.avsc), framed as Avro
//! single-object encoding (or the Confluent schema-registry framing) so that every record names
//! the schema it was written with; and incident events (schemas/incident_event.avsc), framed
//! the same way.

mod canonical;
mod datum;
mod event;
mod fields;
mod framing;
mod registered;
mod schema;
mod value;

pub use canonical::{CanonicalError, fingerprint, parsing_canonical_form};
pub use event::{EVENT_SCHEMA_JSON, decode_event, encode_event, encode_event_registered, event_fingerprint};
pub use framing::{DecodeError, decode, encode};
pub use registered::{WriterSchemas, encode_registered, registry_id};
pub use schema::CURRENT_SCHEMA_JSON;
