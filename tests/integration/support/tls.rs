//! Test certificates (rcgen) and TLS test servers: a trusted CA with a valid leaf, an expired
//! leaf, a leaf for another host, and a self-signed certificate nobody trusts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use tokio::net::TcpListener;
use tokio_native_tls::native_tls::{Identity, TlsAcceptor};

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

pub struct Pki {
    /// The CA certificate, written to a file for `tls_ca_file`.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

/// Expiry of [`Pki::valid`] leaves, so tests can compare the recorded not-after.
pub const VALID_NOT_AFTER: (i32, u8, u8) = (2099, 1, 1);

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(DnType::CommonName, "sitemon test CA");
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        Pki { ca_file, _dir: dir, issuer: Issuer::new(params, key) }
    }

    fn leaf(&self, names: &[&str], not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.not_before = date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert: cert.pem(), key: key.serialize_pem() }
    }

    /// Valid for 127.0.0.1 and localhost until [`VALID_NOT_AFTER`].
    pub fn valid(&self) -> Leaf {
        self.leaf(&["localhost", "127.0.0.1"], (2024, 1, 1), VALID_NOT_AFTER)
    }

    /// Valid for 127.0.0.1 and localhost, expiring `days` from today (UTC).
    pub fn expiring_in(&self, days: i64) -> Leaf {
        let ymd = |d: chrono::NaiveDate| {
            use chrono::Datelike;
            (d.year(), d.month() as u8, d.day() as u8)
        };
        let today = chrono::Utc::now().date_naive();
        self.leaf(&["localhost", "127.0.0.1"], (2024, 1, 1), ymd(today + chrono::Duration::days(days)))
    }

    pub fn expired(&self) -> Leaf {
        self.leaf(&["localhost", "127.0.0.1"], (2020, 1, 1), (2021, 1, 1))
    }

    pub fn wrong_host(&self) -> Leaf {
        self.leaf(&["other.test"], (2024, 1, 1), VALID_NOT_AFTER)
    }
}

pub fn self_signed() -> Leaf {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    Leaf { cert: cert.pem(), key: key.serialize_pem() }
}

/// Serves HTTP/1.1 over TLS with `leaf`, answering every request with `response` (raw bytes).
pub async fn serve(leaf: &Leaf, response: &'static [u8]) -> SocketAddr {
    let identity = Identity::from_pkcs8(leaf.cert.as_bytes(), leaf.key.as_bytes()).unwrap();
    let acceptor = Arc::new(tokio_native_tls::TlsAcceptor::from(TlsAcceptor::new(identity).unwrap()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    super::raw::answer(&mut tls, response).await;
                }
            });
        }
    });
    addr
}
