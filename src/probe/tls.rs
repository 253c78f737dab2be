//! TLS for the probe (native-tls): one connector per distinct site TLS setting, built at start
//! and again for each new site list.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use tokio_native_tls::TlsConnector;
use tokio_native_tls::native_tls::{self, Certificate};

use crate::domain::{Site, TlsOptions};

/// A site whose TLS settings cannot be turned into a connector (e.g. an unreadable CA file).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsSetupError {
    /// Index of the site in the list given to [`Connectors::for_sites`] or
    /// [`Connectors::prepare`].
    pub site: usize,
    pub message: String,
}

/// One connector per distinct TLS setting of the current site list and of the one before it (whose
/// checks may still be under way right after a reload).
pub struct Connectors(RwLock<Prepared>);

struct Prepared {
    current: HashMap<TlsOptions, TlsConnector>,
    previous: HashMap<TlsOptions, TlsConnector>,
}

/// A connector for every distinct setting among `sites`, or every site whose setting cannot have
/// one (the first site of each such setting).
fn build_all(sites: &[Site]) -> Result<HashMap<TlsOptions, TlsConnector>, Vec<TlsSetupError>> {
    let mut map = HashMap::new();
    let mut failed: HashSet<&TlsOptions> = HashSet::new();
    let mut errors = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        if map.contains_key(&site.tls) || failed.contains(&site.tls) {
            continue;
        }
        match connector(&site.tls) {
            Ok(c) => {
                map.insert(site.tls.clone(), c);
            }
            Err(message) => {
                failed.insert(&site.tls);
                errors.push(TlsSetupError { site: i, message });
            }
        }
    }
    if errors.is_empty() { Ok(map) } else { Err(errors) }
}

/// The most a CA file may hold: a bundle of every public root is about 250 KB.
const MAX_CA_FILE: u64 = 4 << 20;

/// A CA file's bytes: a regular file (not a FIFO or a device, which could block or never end) of
/// at most [`MAX_CA_FILE`].
fn read_ca_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read CA file {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() || meta.len() > MAX_CA_FILE {
        return Err(format!("CA file {} is not a regular file of at most 4 MB", path.display()));
    }
    let mut pem = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(cannot)?, MAX_CA_FILE),
        &mut pem,
    )
    .map_err(cannot)?;
    Ok(pem)
}

fn connector(opts: &TlsOptions) -> Result<TlsConnector, String> {
    let mut b = native_tls::TlsConnector::builder();
    if !opts.verify {
        b.danger_accept_invalid_certs(true).danger_accept_invalid_hostnames(true);
    }
    if let Some(path) = &opts.ca_file {
        let pem = read_ca_file(path)?;
        let ca = Certificate::from_pem(&pem)
            .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
        b.add_root_certificate(ca);
    }
    b.build().map(TlsConnector::from).map_err(|e| format!("cannot set up TLS: {e}"))
}

impl Connectors {
    /// Builds a connector for every distinct setting among `sites`, so that a bad CA file stops
    /// start-up (the error names the first site with that setting).
    pub fn for_sites(sites: &[Site]) -> Result<Self, Vec<TlsSetupError>> {
        let current = build_all(sites)?;
        Ok(Connectors(RwLock::new(Prepared { current, previous: HashMap::new() })))
    }

    /// Builds a connector for every distinct setting among `sites`, a new site list: CA files
    /// are read again. Either every setting has its connector, and they replace the current ones
    /// (those of the list before stay for its checks still under way), or nothing changes and
    /// every setting that cannot have one is returned (by its first site).
    pub fn prepare(&self, sites: &[Site]) -> Result<(), Vec<TlsSetupError>> {
        let fresh = build_all(sites)?;
        let mut p = self.0.write().unwrap_or_else(|e| e.into_inner());
        p.previous = std::mem::replace(&mut p.current, fresh);
        Ok(())
    }

    /// The connector for exactly these settings. Settings not prepared (a site the probe was not
    /// built with) get a connector built now for them: never another setting's, which would
    /// verify a `tls_verify: false` site, or skip the CA file of another.
    pub fn get(&self, opts: &TlsOptions) -> Result<TlsConnector, String> {
        let p = self.0.read().unwrap_or_else(|e| e.into_inner());
        match p.current.get(opts).or_else(|| p.previous.get(opts)) {
            Some(c) => Ok(c.clone()),
            None => {
                drop(p);
                connector(opts)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(dir: &std::path::Path, ca_files: &[Option<&str>]) -> Vec<Site> {
        let mut text = String::from("sites:\n");
        for (i, ca) in ca_files.iter().enumerate() {
            let ca = ca.map(|f| format!(", tls_ca_file: '{}'", dir.join(f).display())).unwrap_or_default();
            text.push_str(&format!("  - {{name: s{i}, url: 'https://h{i}.test/'{ca}}}\n"));
        }
        crate::config::parse(&text, "s.yaml".as_ref(), &|_| None).unwrap().sites
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    fn prepared(c: &Connectors) -> (usize, usize) {
        let p = c.0.read().unwrap();
        (p.current.len(), p.previous.len())
    }

    #[test]
    fn a_ca_file_that_is_no_regular_file_is_refused_without_reading_it() {
        for path in ["/dev/zero", "/"] {
            let e = read_ca_file(std::path::Path::new(path)).unwrap_err();
            assert!(e.contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn a_new_list_gets_its_connectors_and_a_bad_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_pem()).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
        let c = Connectors::for_sites(&sites(dir.path(), &[None])).unwrap();
        assert_eq!(prepared(&c), (1, 0));

        // A new CA file: ready before a check needs it; the old list's setting stays for its
        // checks still under way.
        let next = sites(dir.path(), &[Some("ca.pem"), Some("ca.pem")]);
        c.prepare(&next).unwrap();
        assert_eq!(prepared(&c), (1, 1));
        assert!(c.0.read().unwrap().current.contains_key(&next[0].tls));

        // Every unusable setting is reported, by its first site, and nothing changes.
        let bad = sites(dir.path(), &[None, Some("junk.pem"), Some("missing.pem"), Some("junk.pem")]);
        let errors = c.prepare(&bad).unwrap_err();
        let by_site: Vec<_> = errors.iter().map(|e| e.site).collect();
        assert_eq!(by_site, [1, 2]);
        assert!(errors[0].message.contains("is not a PEM certificate"), "{}", errors[0].message);
        assert!(errors[1].message.contains("cannot read CA file"), "{}", errors[1].message);
        assert_eq!(prepared(&c), (1, 1));
        assert!(c.0.read().unwrap().current.contains_key(&next[0].tls));
    }
}
