//! `kafka.tls` and `kafka.sasl` as librdkafka settings, and the config-time check that the
//! files they name exist.

use std::path::Path;

use rdkafka::ClientConfig;

use crate::config::{KafkaConfig, Problem};

/// Sets the security protocol and the TLS and SASL settings `k` asks for. SASL always runs over
/// TLS here (`sasl_ssl`); `kafka.properties` is applied after this and may still choose
/// `sasl_plaintext` or override any of these settings.
pub fn apply(c: &mut ClientConfig, k: &KafkaConfig) {
    let protocol = match (&k.tls, &k.sasl) {
        (_, Some(_)) => "sasl_ssl",
        (Some(_), None) => "ssl",
        (None, None) => return,
    };
    c.set("security.protocol", protocol);
    if let Some(tls) = &k.tls {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        if let Some(ca) = &tls.ca_file {
            c.set("ssl.ca.location", path(ca));
        }
        if let Some(cert) = &tls.cert_file {
            c.set("ssl.certificate.location", path(cert));
        }
        if let Some(key) = &tls.key_file {
            c.set("ssl.key.location", path(key));
        }
        if let Some(password) = &tls.key_password {
            c.set("ssl.key.password", password.expose());
        }
    }
    if let Some(sasl) = &k.sasl {
        c.set("sasl.mechanism", sasl.mechanism.name());
        c.set("sasl.username", &sasl.username);
        c.set("sasl.password", sasl.password.expose());
    }
}

/// A problem for each file of `kafka.tls` that is not there (or not a file), at its path. Only
/// looks the files up: whether they hold what they should is librdkafka's to say, when the
/// client is created.
pub fn file_problems(k: &KafkaConfig) -> Vec<Problem> {
    let Some(tls) = &k.tls else { return Vec::new() };
    [("ca_file", &tls.ca_file), ("cert_file", &tls.cert_file), ("key_file", &tls.key_file)]
        .into_iter()
        .filter_map(|(key, file)| {
            let file = file.as_deref()?;
            let why = match std::fs::metadata(file) {
                Ok(m) if m.is_file() => return None,
                Ok(_) => "is not a file".to_owned(),
                Err(e) => format!("cannot be read: {e}"),
            };
            Some(Problem::new(format!("kafka.tls.{key}"), format!("`{}` {why}", file.display())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{KafkaSasl, KafkaTls, SaslMechanism, Secret};

    fn kafka(tls: Option<KafkaTls>, sasl: Option<KafkaSasl>, properties: &[(&str, &str)]) -> KafkaConfig {
        KafkaConfig { tls, sasl, ..KafkaConfig::unreachable(properties) }
    }

    fn client_tls() -> KafkaTls {
        KafkaTls {
            ca_file: Some(PathBuf::from("/pki/ca.pem")),
            cert_file: Some(PathBuf::from("/pki/client.pem")),
            key_file: Some(PathBuf::from("/pki/client.key")),
            key_password: Some(Secret::new("k3y")),
        }
    }

    fn sasl() -> KafkaSasl {
        KafkaSasl {
            mechanism: SaslMechanism::ScramSha512,
            username: "u".to_owned(),
            password: Secret::new("pw"),
        }
    }

    fn settings(k: &KafkaConfig) -> ClientConfig {
        crate::kafka::client::client_config(k, &[])
    }

    #[test]
    fn tls_alone_is_ssl_with_the_client_certificate() {
        let c = settings(&kafka(Some(client_tls()), None, &[]));
        assert_eq!(c.get("security.protocol"), Some("ssl"));
        assert_eq!(c.get("ssl.ca.location"), Some("/pki/ca.pem"));
        assert_eq!(c.get("ssl.certificate.location"), Some("/pki/client.pem"));
        assert_eq!(c.get("ssl.key.location"), Some("/pki/client.key"));
        assert_eq!(c.get("ssl.key.password"), Some("k3y"));
        assert_eq!(c.get("sasl.mechanism"), None);
    }

    #[test]
    fn sasl_implies_tls() {
        let c = settings(&kafka(None, Some(sasl()), &[]));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("u"));
        assert_eq!(c.get("sasl.password"), Some("pw"));
        assert_eq!(c.get("ssl.ca.location"), None);
        let c = settings(&kafka(
            Some(KafkaTls { ca_file: Some("/ca.pem".into()), ..Default::default() }),
            Some(sasl()),
            &[],
        ));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("ssl.ca.location"), Some("/ca.pem"));
    }

    #[test]
    fn properties_still_override() {
        let k = kafka(
            None,
            Some(sasl()),
            &[("security.protocol", "sasl_plaintext"), ("sasl.mechanism", "PLAIN")],
        );
        let c = settings(&k);
        assert_eq!(c.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(c.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(c.get("sasl.username"), Some("u"));
    }

    #[test]
    fn nothing_configured_sets_nothing() {
        let c = settings(&kafka(None, None, &[]));
        assert_eq!(c.get("security.protocol"), None);
    }

    #[test]
    fn missing_files_are_each_reported_at_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let tls = KafkaTls {
            ca_file: Some(ca),
            cert_file: Some(dir.path().join("missing.pem")),
            key_file: Some(dir.path().to_owned()),
            key_password: None,
        };
        let problems = file_problems(&kafka(Some(tls), None, &[]));
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["kafka.tls.cert_file", "kafka.tls.key_file"], "{problems:?}");
        assert!(problems[0].message.contains("missing.pem` cannot be read"), "{problems:?}");
        assert!(problems[1].message.ends_with("is not a file"), "{problems:?}");
    }
}
