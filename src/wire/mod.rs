//! The wire contract: check results as Avro (schemas/check_result.avsc), framed as Avro
//! single-object encoding so that every record names the schema it was written with.

mod canonical;
mod datum;
mod framing;
mod schema;
mod value;

pub use canonical::{CanonicalError, fingerprint, parsing_canonical_form};
pub use framing::{DecodeError, decode, encode};
