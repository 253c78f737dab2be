//! The test broker's TLS and SASL_SSL listeners and the credentials `scripts/services` made for
//! them (a test CA, a client certificate with a password-protected key, a SCRAM-SHA-512 user).

/// Addresses and files of the secured listeners, from `scripts/services env`.
pub struct SecureKafka {
    pub ssl_bootstrap: String,
    pub sasl_bootstrap: String,
    pub ca_file: String,
    pub client_cert: String,
    pub client_key: String,
    pub client_key_password: String,
    pub sasl_username: String,
    pub sasl_password: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `make test`, or `eval \"$(scripts/services up)\"` first")
    })
}

impl SecureKafka {
    pub fn from_env() -> Self {
        SecureKafka {
            ssl_bootstrap: var("KAFKA_SSL_BOOTSTRAP"),
            sasl_bootstrap: var("KAFKA_SASL_BOOTSTRAP"),
            ca_file: var("KAFKA_CA_FILE"),
            client_cert: var("KAFKA_CLIENT_CERT"),
            client_key: var("KAFKA_CLIENT_KEY"),
            client_key_password: var("KAFKA_CLIENT_KEY_PASSWORD"),
            sasl_username: var("KAFKA_SASL_USERNAME"),
            sasl_password: var("KAFKA_SASL_PASSWORD"),
        }
    }
}
