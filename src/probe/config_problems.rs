//! The probe for a config's sites: a TLS setting it cannot use (a CA file) is a config problem
//! at its place (exit 64), found before anything is contacted — at start and at each reload.

use std::path::Path;

use super::{HyperProbe, ProbeSetupError, TlsSetupError};
use crate::config::{self, Config, ConfigError, Problem};
use crate::domain::Site;

/// The probe for `sites`, taken from `cfg`. A CA file that cannot be used is a config problem
/// (exit 64), found before anything is contacted.
pub fn for_config(file: &Path, cfg: &Config, sites: &[Site]) -> anyhow::Result<HyperProbe> {
    for_sites(file, &cfg.region, sites, inline(cfg))
}

/// Whether the sites of `cfg` stand in its own `sites:` in their order, so that a problem of the
/// i-th has its place there (not so for a `sites_file`'s or a shard's share).
pub fn inline(cfg: &Config) -> bool {
    cfg.sites_file.is_none() && cfg.shard.is_none()
}

/// The probe for `sites` of `region`; `inline` as in [`inline`].
pub fn for_sites(file: &Path, region: &str, sites: &[Site], inline: bool) -> anyhow::Result<HyperProbe> {
    match HyperProbe::new(region, sites) {
        Ok(p) => Ok(p),
        Err(ProbeSetupError::Tls(errors)) => {
            Err(located(file, errors.into_iter().map(|e| tls_problem(sites, e, inline)).collect()).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A site's TLS setting the probe cannot use, as a config problem: at its place in the config
/// file when `inline` (the list is the file's own `sites:`, unfiltered), else by site name.
pub fn tls_problem(sites: &[Site], e: TlsSetupError, inline: bool) -> Problem {
    match inline {
        true => Problem::new(format!("sites[{}].tls_ca_file", e.site), e.message),
        false => Problem::new(format!("site `{}`.tls_ca_file", sites[e.site].id), e.message),
    }
}

/// `problems` at their places in `file`.
pub fn located(file: &Path, mut problems: Vec<Problem>) -> ConfigError {
    config::locate(file, &mut problems);
    ConfigError { file: file.to_owned(), problems }
}
