//! The schema-registry adapter: a client of the REST subset that Confluent Schema Registry,
//! Karapace, Redpanda and Apicurio's Confluent-compatible API share, via schema_registry_converter.

mod client;

pub use client::{RegistryClient, RegistryError};
