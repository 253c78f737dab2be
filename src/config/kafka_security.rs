//! `kafka.tls` and `kafka.sasl`: how sitemon authenticates to a hosted Kafka (a CA and a client
//! certificate, or SASL over TLS), read and checked with every other config problem.

use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::Secret;
use super::reader::{Reader, join};

const TLS: &[&str] = &["ca_file", "cert_file", "key_file", "key_password"];
const SASL: &[&str] = &["mechanism", "username", "password"];

/// TLS to the brokers: the CA that signed them (else the system's), and a client certificate
/// with its key when the brokers require one. Files are PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub key_password: Option<Secret>,
}

/// SASL authentication; always over TLS unless `kafka.properties` says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] =
        [SaslMechanism::Plain, SaslMechanism::ScramSha256, SaslMechanism::ScramSha512];

    /// The name librdkafka and the brokers use.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

pub fn read_tls(r: &mut Reader, v: &Value, path: &str) -> Option<KafkaTls> {
    let f = r.fields(v, path, TLS)?;
    let file =
        |r: &mut Reader, key: &str| f.get(key).map(|(v, p)| r.nonempty_string(v, &p).map(PathBuf::from));
    let ca = file(r, "ca_file");
    let cert = file(r, "cert_file");
    let key = file(r, "key_file");
    let password = f.get("key_password").map(|(v, p)| r.string(v, &p).map(Secret::new));
    // A certificate is useless without its key and the other way round; a password needs a key.
    match (&cert, &key) {
        (Some(_), None) => {
            r.problem(&join(path, "key_file"), "missing: `cert_file` needs the key it was issued for")
        }
        (None, Some(_)) => {
            r.problem(&join(path, "cert_file"), "missing: `key_file` needs the certificate it belongs to")
        }
        _ => {}
    }
    if password.is_some() && key.is_none() {
        r.problem(&join(path, "key_password"), "there is no `key_file` for this password to open");
    }
    let ok = cert.is_some() == key.is_some() && (password.is_none() || key.is_some());
    let tls = KafkaTls {
        ca_file: ca.map_or(Some(None), |c| c.map(Some))?,
        cert_file: cert.map_or(Some(None), |c| c.map(Some))?,
        key_file: key.map_or(Some(None), |c| c.map(Some))?,
        key_password: password.map_or(Some(None), |c| c.map(Some))?,
    };
    ok.then_some(tls)
}

pub fn read_sasl(r: &mut Reader, v: &Value, path: &str) -> Option<KafkaSasl> {
    let f = r.fields(v, path, SASL)?;
    let names = || SaslMechanism::ALL.map(SaslMechanism::name).join(", ");
    let mechanism = match f.get("mechanism") {
        Some((v, p)) => r.nonempty_string(v, &p).and_then(|m| {
            let found = SaslMechanism::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(m.trim()));
            if found.is_none() {
                r.problem(
                    &p,
                    format!(
                        "`{m}` is not supported; expected one of: {} (others through `kafka.properties`)",
                        names()
                    ),
                );
            }
            found
        }),
        None => {
            r.problem(&join(path, "mechanism"), format!("missing: one of {}", names()));
            None
        }
    };
    let username = match f.get("username") {
        Some((v, p)) => r.nonempty_string(v, &p),
        None => {
            r.problem(&join(path, "username"), "missing");
            None
        }
    };
    let password = match f.get("password") {
        Some((v, p)) => r.nonempty_string(v, &p).map(Secret::new),
        None => {
            r.problem(&join(path, "password"), "missing: e.g. `${KAFKA_PASSWORD}`");
            None
        }
    };
    Some(KafkaSasl { mechanism: mechanism?, username: username?, password: password? })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigError, parse};

    fn check(kafka: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| (name == "PW").then(|| "env-s3cret".to_owned());
        parse(&format!("kafka:\n  bootstrap_servers: h:9093\n{kafka}"), Path::new("t.yaml"), &env)
    }

    fn paths(e: &ConfigError) -> Vec<&str> {
        e.problems.iter().map(|p| p.path.as_str()).collect()
    }

    #[test]
    fn reads_tls_and_sasl_with_secrets_from_the_environment() {
        let c = check(
            "  tls: {ca_file: /ca.pem, cert_file: /c.pem, key_file: /c.key, key_password: '${PW}'}\n  sasl: {mechanism: scram-sha-256, username: u, password: '${PW}'}\n",
        )
        .unwrap();
        let k = c.kafka.unwrap();
        let tls = k.tls.as_ref().unwrap();
        assert_eq!(tls.cert_file.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(tls.key_password.as_ref().map(Secret::expose), Some("env-s3cret"));
        let sasl = k.sasl.as_ref().unwrap();
        assert_eq!((sasl.mechanism, sasl.username.as_str()), (SaslMechanism::ScramSha256, "u"));
        assert_eq!(sasl.password.expose(), "env-s3cret");
        assert!(!format!("{k:?}").contains("s3cret"), "{k:?}");
        assert_eq!(k.secrets().filter(|s| *s == "env-s3cret").count(), 2);
    }

    #[test]
    fn every_tls_and_sasl_mistake_is_reported_at_once() {
        let e = check(
            "  tls: {ca_file: '', cert_file: /c.pem, key_pasword: x}\n  sasl: {mechanism: GSSAPI, password: '${NOPE}'}\n",
        )
        .unwrap_err();
        assert_eq!(
            paths(&e),
            [
                "kafka.tls.key_pasword",
                "kafka.tls.ca_file",
                "kafka.tls.key_file",
                "kafka.sasl.mechanism",
                "kafka.sasl.username",
                "kafka.sasl.password"
            ],
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains("did you mean `key_password`?"), "{text}");
        assert!(text.contains("`cert_file` needs the key"), "{text}");
        assert!(
            text.contains("`GSSAPI` is not supported; expected one of: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
            "{text}"
        );
        assert!(text.contains("`NOPE` is not set"), "{text}");
    }

    #[test]
    fn a_key_needs_its_certificate_and_a_password_needs_a_key() {
        let e = check("  tls: {key_file: /c.key}\n").unwrap_err();
        assert_eq!(paths(&e), ["kafka.tls.cert_file"], "{e}");
        let e = check("  tls: {ca_file: /ca.pem, key_password: pw}\n").unwrap_err();
        assert_eq!(paths(&e), ["kafka.tls.key_password"], "{e}");
        assert!(!e.to_string().contains("pw\n"), "{e}");
        let e = check("  tls: []\n  sasl: {mechanism: PLAIN, username: u}\n").unwrap_err();
        assert_eq!(paths(&e), ["kafka.tls", "kafka.sasl.password"], "{e}");
    }

    #[test]
    fn an_empty_tls_section_is_tls_with_the_system_cas() {
        let k = check("  tls: {}\n").unwrap().kafka.unwrap();
        assert_eq!(k.tls, Some(KafkaTls::default()));
        assert!(k.sasl.is_none());
    }
}
