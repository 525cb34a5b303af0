//! The SSRF guard: decides, for every hop of a request, whether its target may be reached.
//!
//! Three places consult it, and together they cover every way a connection can start:
//! - before sending, on the request URL (IP-literal hosts never reach a resolver, so this
//!   is the only check they get on the first hop);
//! - the redirect policy, on every `Location` before it is followed (the same reason, for
//!   later hops);
//! - the resolver, on every address a host name resolves to. The connector connects only
//!   to the addresses the resolver returned, so there is no gap between check and connect
//!   for DNS rebinding to use.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::redirect;
use url::{Host, Url};

use super::address::{AddressClass, classify};

#[derive(Debug, Clone)]
pub(crate) struct Guard {
    allow_private: bool,
    also_allow: Arc<[SocketAddr]>,
}

/// Why the guard refused a target. It travels through reqwest as the source of its error
/// and is recognised again on the way out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("only http and https URLs are allowed, not {scheme}:")]
    Scheme { scheme: String },
    #[error("the URL has no host")]
    NoHost,
    #[error("{host} is a {class} address")]
    Address { host: String, class: AddressClass },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped after {limit} redirects")]
pub(crate) struct TooManyRedirects {
    pub(crate) limit: usize,
}

impl Guard {
    pub(crate) fn new(allow_private: bool, also_allow: Vec<SocketAddr>) -> Self {
        Self {
            allow_private,
            also_allow: also_allow.into(),
        }
    }

    /// Checks what can be known from the URL alone: the scheme, and the host when it is an
    /// IP literal. Names, `localhost` included, are left to the resolver, which judges
    /// what they actually resolve to.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme {
                scheme: url.scheme().to_owned(),
            });
        }
        let host = url.host().ok_or(Refusal::NoHost)?;
        if self.allow_private {
            return Ok(());
        }
        let ip = match host {
            Host::Ipv4(ip) => IpAddr::V4(ip),
            Host::Ipv6(ip) => IpAddr::V6(ip),
            Host::Domain(_) => return Ok(()),
        };
        let class = classify(ip);
        let port = url.port_or_known_default().unwrap_or(0);
        if class.is_public() || self.also_allow.contains(&SocketAddr::new(ip, port)) {
            Ok(())
        } else {
            Err(Refusal::Address {
                host: url.host_str().unwrap_or_default().to_owned(),
                class,
            })
        }
    }

    /// Checks every address a name resolved to; one bad address refuses them all, so a
    /// resolver answer mixing public and private addresses cannot be used to slip through.
    /// `also_allow` does not apply here: the resolver never learns the port, so honouring
    /// it would open every port of the trusted address to any name that resolves to it.
    pub(crate) fn check_resolved(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), Refusal> {
        if self.allow_private {
            return Ok(());
        }
        match addrs
            .iter()
            .map(|addr| classify(addr.ip()))
            .find(|class| !class.is_public())
        {
            Some(class) => Err(Refusal::Address {
                host: host.to_owned(),
                class,
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn redirect_policy(&self, max_redirects: usize) -> redirect::Policy {
        let guard = self.clone();
        redirect::Policy::custom(move |attempt| {
            // `previous` starts with the original URL, so it holds one more entry than the
            // number of redirects followed so far.
            if attempt.previous().len() > max_redirects {
                return attempt.error(TooManyRedirects {
                    limit: max_redirects,
                });
            }
            match guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refusal) => attempt.error(refusal),
            }
        })
    }
}
