//! Name resolution on the async runtime (hickory-resolver): no blocking thread per lookup, and
//! a cache that honours record TTLs. `/etc/hosts` is consulted first, as by the system resolver.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;

use super::classify::Failure;
use crate::domain::FailureKind;

pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// Reads the system resolver configuration (`/etc/resolv.conf`).
    pub fn from_system() -> Result<Self, String> {
        let resolver =
            TokioResolver::builder_tokio().map_err(|e| e.to_string())?.build().map_err(|e| e.to_string())?;
        Ok(Dns { resolver })
    }

    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        let found = self.resolver.lookup_ip(host).await.map_err(|e| {
            Failure::new(FailureKind::Dns, format!("cannot resolve {host}: {}", short(&e.to_string())))
        })?;
        let addrs: Vec<IpAddr> = found.iter().collect();
        if addrs.is_empty() {
            return Err(Failure::new(FailureKind::Dns, format!("{host} has no addresses")));
        }
        Ok(addrs)
    }
}

/// hickory's messages embed the whole query; keep what a person needs.
fn short(msg: &str) -> String {
    if msg.contains("no records found") {
        return "no such host (no address records)".to_owned();
    }
    crate::domain::storable_text(msg.lines().next().unwrap_or(msg), 200)
}
