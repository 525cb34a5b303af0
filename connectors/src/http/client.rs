use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::error::HttpError;
use super::guard::Guard;
use super::policy::HttpPolicy;
use super::request::{self, OutgoingRequest};
use super::resolver::GuardedResolver;
use super::response::HttpResponse;

/// Cheap to clone: one connection pool shared by all clones.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    guard: Guard,
    limits: Arc<Limits>,
}

#[derive(Debug)]
struct Limits {
    total_timeout: Duration,
    max_response_bytes: usize,
}

impl HttpClient {
    pub fn new(policy: HttpPolicy) -> Result<Self, HttpError> {
        let guard = Guard::new(policy.allow_private, policy.also_allow);
        let inner = reqwest::Client::builder()
            .user_agent(policy.user_agent)
            .connect_timeout(policy.connect_timeout)
            .redirect(guard.redirect_policy(policy.max_redirects))
            .dns_resolver(GuardedResolver::new(guard.clone()))
            // Through a proxy the guard would vet the proxy instead of the target.
            .no_proxy()
            // A Referer would hand the previous URL, query and all, to a redirect target.
            .referer(false)
            .build()
            .map_err(|error| HttpError::Setup(error.to_string()))?;
        Ok(Self {
            inner,
            guard,
            limits: Arc::new(Limits {
                total_timeout: policy.total_timeout,
                max_response_bytes: policy.max_response_bytes,
            }),
        })
    }

    /// The guarded reqwest client, for a library that speaks HTTP itself (async-openai,
    /// oauth2). Names it resolves and redirects it follows are vetted as for any request;
    /// an IP-literal URL is not, so check it with [`HttpClient::check_url`] first.
    pub fn reqwest_client(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Whether the SSRF rules let a request to `url` start (scheme, and the host when it
    /// is an IP literal).
    pub fn check_url(&self, url: &url::Url) -> Result<(), HttpError> {
        self.guard.check_url(url).map_err(HttpError::from)
    }

    /// The addresses `host` resolves to, each with `port`, if the SSRF rules allow all of
    /// them: for protocols other than HTTP (SMTP, Postgres), which must then connect to
    /// exactly these addresses and to no second lookup of the name.
    pub async fn vet_host(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, HttpError> {
        let url = url::Url::parse(&format!("http://{}:{port}/", bracketed(host)))
            .map_err(|_| HttpError::InvalidUrl(format!("{host} is not a valid host name")))?;
        self.check_url(&url)?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|error| HttpError::Connect(format!("{host} did not resolve: {error}")))?
            .collect();
        if addrs.is_empty() {
            return Err(HttpError::Connect(format!(
                "{host} did not resolve to any address"
            )));
        }
        self.guard
            .check_resolved(host, &addrs)
            .map_err(HttpError::from)?;
        Ok(addrs)
    }

    /// Sends the request and reads the whole response. Statuses of 4xx and 5xx are
    /// responses, not errors.
    pub async fn send(&self, request: OutgoingRequest) -> Result<HttpResponse, HttpError> {
        let timeout = request.timeout.unwrap_or(self.limits.total_timeout);
        let url = request::url(&request.url, &request.query)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        if let Err(refusal) = self.guard.check_url(&url) {
            tracing::info!(http.host = %host, %refusal, "refused a workflow HTTP request");
            return Err(refusal.into());
        }
        let mut headers = request::headers(&request.headers, request.idempotency_key.as_deref())?;
        let mut builder = self.inner.request(request::method(request.method), url);
        if let Some(body) = &request.body {
            builder = builder.body(request::body(body, &mut headers));
        }
        let prepared = builder
            .headers(headers)
            .build()
            .map_err(HttpError::from_reqwest)?;

        tracing::debug!(http.method = request.method.as_str(), http.host = %host, "sending workflow HTTP request");
        let exchange = async {
            let response = self
                .inner
                .execute(prepared)
                .await
                .map_err(HttpError::from_reqwest)?;
            HttpResponse::read(response, self.limits.max_response_bytes).await
        };
        let result = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(HttpError::Timeout));
        if let Err(error @ HttpError::Forbidden { .. }) = &result {
            tracing::info!(http.host = %host, %error, "refused a workflow HTTP request");
        }
        result
    }
}

/// An IPv6 literal goes in brackets in a URL.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}
