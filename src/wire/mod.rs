//! The wire contract: check results as Avro (schemas/check_result.avsc), framed as Avro
//! single-object encoding so that every record names the schema it was written with.

mod canonical;
mod datum;
mod framing;
mod schema;
mod value;

pub use framing::{DecodeError, decode, encode};
