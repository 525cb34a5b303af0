//! The operator's limits for workflow HTTP steps, fixed when the client is built.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// `--http-allow-private`: when false, loopback, private, link-local and every other
    /// non-public address is refused. Non-http(s) schemes are refused either way.
    pub allow_private: bool,
    /// Exact socket addresses that stay reachable while private addresses are refused: for
    /// tests and explicitly trusted internal services. They match only URLs naming the
    /// address literally (`http://10.0.0.5:8080/`), never a host name that resolves to
    /// it: the resolver does not learn the port, so honouring them there would open every
    /// port of the trusted host to any name an author points at it.
    pub also_allow: Vec<SocketAddr>,
    pub connect_timeout: Duration,
    /// From the start of the request to the last byte of the body, redirects included.
    /// A request may ask for a different one (`OutgoingRequest::timeout`).
    pub total_timeout: Duration,
    /// The response body is read in chunks and abandoned past this many bytes, whatever
    /// `Content-Length` claims.
    pub max_response_bytes: usize,
    pub max_redirects: usize,
    pub user_agent: String,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            also_allow: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_response_bytes: 10 * 1024 * 1024,
            max_redirects: 5,
            user_agent: concat!("AutomationOS/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}
