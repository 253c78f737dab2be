//! TLS for the probe (native-tls): one connector per distinct site TLS setting, built at start,
//! and the leaf certificate's expiry read from the handshake.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_native_tls::native_tls::{self, Certificate};
use tokio_native_tls::{TlsConnector, TlsStream};

use crate::domain::{Site, TlsOptions};

/// A site whose TLS settings cannot be turned into a connector (e.g. an unreadable CA file).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsSetupError {
    /// Index of the site in the list given to [`Connectors::for_sites`].
    pub site: usize,
    pub message: String,
}

/// One connector per distinct TLS setting of the sites given at start.
pub struct Connectors(HashMap<TlsOptions, TlsConnector>);

fn connector(opts: &TlsOptions) -> Result<TlsConnector, String> {
    let mut b = native_tls::TlsConnector::builder();
    if !opts.verify {
        b.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
    }
    if let Some(path) = &opts.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let ca = Certificate::from_pem(&pem)
            .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
        b.add_root_certificate(ca);
    }
    b.build().map(TlsConnector::from).map_err(|e| format!("cannot set up TLS: {e}"))
}

impl Connectors {
    /// Builds a connector for every distinct setting among `sites`, so that a bad CA file stops
    /// start-up (the error names the first site with that setting).
    pub fn for_sites(sites: &[Site]) -> Result<Self, TlsSetupError> {
        let mut map = HashMap::new();
        for (i, site) in sites.iter().enumerate() {
            if !map.contains_key(&site.tls) {
                let c = connector(&site.tls).map_err(|message| TlsSetupError { site: i, message })?;
                map.insert(site.tls.clone(), c);
            }
        }
        Ok(Connectors(map))
    }

    /// The connector for exactly these settings. Settings not prepared at start (a site the
    /// probe was not built with) get a connector built now for them: never another setting's,
    /// which would verify a `tls_verify: false` site, or skip the CA file of another.
    pub fn get(&self, opts: &TlsOptions) -> Result<TlsConnector, String> {
        match self.0.get(opts) {
            Some(c) => Ok(c.clone()),
            None => connector(opts),
        }
    }
}

/// The leaf certificate's not-after time, when the peer sent a parseable certificate.
pub fn not_after<S>(stream: &TlsStream<S>) -> Option<DateTime<Utc>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let der = stream.get_ref().peer_certificate().ok()??.to_der().ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
}
