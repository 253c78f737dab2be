//! The schema-registry adapter: a client of the REST subset that Confluent Schema Registry,
//! Karapace, Redpanda and Apicurio's Confluent-compatible API share, via schema_registry_converter.

mod client;
mod registration;

pub use client::{RegistryClient, RegistryError};
pub use registration::{CHECK_RESULT_SCHEMA, EVENT_SCHEMA, WriterSchema, register_schema};
