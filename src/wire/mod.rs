//! The wire contract: check results as Avro (schemas/check_result.avsc), framed as Avro
//! single-object encoding (or the Confluent schema-registry framing) so that every record names
//! the schema it was written with.

mod canonical;
mod datum;
mod framing;
mod registered;
mod schema;
mod value;

pub use canonical::{CanonicalError, fingerprint, parsing_canonical_form};
pub use framing::{DecodeError, decode, encode};
pub use registered::{WriterSchemas, encode_registered, registry_id};
pub use schema::CURRENT_SCHEMA_JSON;
