//! Errors from creating a Kafka client, with every configured property value and password
//! redacted: librdkafka and rdkafka echo a rejected property's value (`sasl.pasword <the password>`).

use std::path::Path;

use rdkafka::error::KafkaError;

use crate::config::{self, ConfigError, KafkaConfig, Problem};

/// Why a Kafka client could not be created. The text holds no value of `kafka.properties` and
/// no password of `kafka.tls` or `kafka.sasl`.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// librdkafka refused a property (unknown name or invalid value): a config problem, found
    /// before anything connects.
    #[error("kafka property `{key}`: {message}")]
    Property { key: String, message: String },
    /// Any other failure to create the client.
    #[error("{0}")]
    Creation(String),
}

impl ClientSetupError {
    /// As the command's error: a refused property is a config problem (exit 64) at its place in
    /// `file`, anything else a runtime failure creating the Kafka `what`. Neither text holds a
    /// property value.
    pub fn for_command(self, file: &Path, what: &str) -> anyhow::Error {
        match self {
            ClientSetupError::Property { key, message } => {
                let mut problems = vec![Problem::new(format!("kafka.properties.{key}"), message)];
                config::locate(file, &mut problems);
                ConfigError { file: file.to_owned(), problems }.into()
            }
            ClientSetupError::Creation(message) => anyhow::anyhow!("creating the Kafka {what}: {message}"),
        }
    }

    /// Classifies `e` and redacts every value of `k.properties` and every password of
    /// `k.tls` and `k.sasl` from its text.
    pub fn new(e: KafkaError, k: &KafkaConfig) -> Self {
        let values = || k.secrets();
        match e {
            // Display would print `desc key value`; the value is left out, and the description
            // (which may quote it) is redacted.
            KafkaError::ClientConfig(_, desc, key, _value) => {
                ClientSetupError::Property { message: redact(&desc, values()), key }
            }
            other => ClientSetupError::Creation(redact(&other.to_string(), values())),
        }
    }
}

/// `text` with every occurrence of each non-empty secret replaced by `***`, the longest first so
/// that a secret containing another is masked whole.
pub fn redact<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.into_iter().fold(text.to_owned(), |t, s| t.replace(s, "***"))
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaConfRes;

    use super::*;

    fn kafka(properties: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig::unreachable(properties)
    }

    #[test]
    fn redacts_every_secret_longest_first() {
        let text = "bad: hunter2 and hunter22 and tok, again hunter2";
        assert_eq!(redact(text, ["hunter2", "hunter22", "", "tok"]), "bad: *** and *** and ***, again ***");
        assert_eq!(redact("nothing here", ["hunter2"]), "nothing here");
    }

    #[test]
    fn a_rejected_property_is_named_without_its_value() {
        let k = kafka(&[("sasl.pasword", "hunter2"), ("linger.ms", "soon-s3cret")]);
        let e = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN,
            "No such configuration property: \"sasl.pasword\"".to_owned(),
            "sasl.pasword".to_owned(),
            "hunter2".to_owned(),
        );
        assert!(e.to_string().contains("hunter2"), "rdkafka no longer echoes the value: {e}");
        let err = ClientSetupError::new(e, &k);
        let shown = format!("{err} {err:?}");
        assert!(matches!(&err, ClientSetupError::Property { key, .. } if key == "sasl.pasword"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");

        let e = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"soon-s3cret\" for configuration property \"linger.ms\"".to_owned(),
            "linger.ms".to_owned(),
            "soon-s3cret".to_owned(),
        );
        let err = ClientSetupError::new(e, &k);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("soon-s3cret") && shown.contains("Invalid value \"***\""), "{shown}");
    }

    #[test]
    fn other_creation_errors_are_redacted_too() {
        let k = kafka(&[("ssl.key.password", "k3y-pass")]);
        let e = KafkaError::ClientCreation("ssl.key.password k3y-pass does not open the key".to_owned());
        let err = ClientSetupError::new(e, &k);
        assert!(matches!(err, ClientSetupError::Creation(_)));
        assert!(!format!("{err} {err:?}").contains("k3y-pass"), "{err}");
    }

    /// The real thing: librdkafka itself rejecting misspelt and invalid properties.
    #[test]
    fn librdkafka_rejections_come_back_redacted() {
        for (key, value) in [("sasl.pasword", "hunter2-s3cret"), ("linger.ms", "not-a-number-s3cret")] {
            let k = kafka(&[(key, value)]);
            let raw = crate::kafka::client::client_config(&k, &[])
                .create::<rdkafka::producer::BaseProducer>()
                .err()
                .unwrap_or_else(|| panic!("librdkafka accepted {key}"));
            let err = ClientSetupError::new(raw, &k);
            let shown = format!("{err} {err:?}");
            assert!(matches!(&err, ClientSetupError::Property { key: k, .. } if k == key), "{shown}");
            assert!(!shown.contains(value) && !shown.contains("s3cret"), "{shown}");
        }
    }
}
