//! The DNS resolver reqwest connects through: it resolves with the system resolver and
//! hands back only addresses the guard accepted, so the vetted addresses are exactly the
//! ones connected to (no second lookup an attacker's DNS server could answer differently).

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::guard::Guard;

#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    guard: Guard,
}

#[derive(Debug, thiserror::Error)]
#[error("{host} did not resolve to any address")]
struct NoAddresses {
    host: String,
}

impl GuardedResolver {
    pub(crate) fn new(guard: Guard) -> Self {
        Self { guard }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port on every address it gets back.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(NoAddresses { host }.into());
            }
            guard.check_resolved(&host, &addrs)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
