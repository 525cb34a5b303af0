use std::net::SocketAddr;
use std::time::Duration;

use aos_domain::workflow::node_types::HttpMethod;
use wiremock::MockServer;

use crate::http::{HttpClient, HttpError, HttpPolicy, HttpResponse, OutgoingRequest};

/// For functional tests against wiremock, which listens on loopback.
pub(super) fn permissive_policy() -> HttpPolicy {
    HttpPolicy {
        allow_private: true,
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        ..HttpPolicy::default()
    }
}

/// The production default, optionally trusting exact addresses.
pub(super) fn strict_policy(also_allow: Vec<SocketAddr>) -> HttpPolicy {
    HttpPolicy {
        allow_private: false,
        also_allow,
        connect_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(10),
        ..HttpPolicy::default()
    }
}

pub(super) fn client(policy: HttpPolicy) -> HttpClient {
    HttpClient::new(policy).expect("the client builds")
}

pub(super) async fn get(client: &HttpClient, url: &str) -> Result<HttpResponse, HttpError> {
    client
        .send(OutgoingRequest::new(HttpMethod::Get, url))
        .await
}

pub(super) async fn request_count(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .expect("request recording is on")
        .len()
}
