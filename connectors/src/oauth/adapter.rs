//! The HTTP client the `oauth2` crate sends its requests with: our guarded reqwest client
//! (the crate's own reqwest integration targets another reqwest version).
//!
//! The URL is vetted before the request starts ([`HttpClient::check_url`]; names are vetted
//! as they resolve), redirects are refused by the client's policy, the whole exchange is
//! bounded in time and the answer in size.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::http;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};

use crate::http::{HttpClient, HttpError};

/// An authorization server's answer is a small JSON document.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct GuardedTransport {
    pub(crate) http: HttpClient,
    pub(crate) timeout: Duration,
}

impl<'c> AsyncHttpClient<'c> for GuardedTransport {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.exchange(request))
                .await
                .unwrap_or(Err(HttpError::Timeout))
        })
    }
}

impl GuardedTransport {
    async fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = url::Url::parse(&parts.uri.to_string())
            .map_err(|error| HttpError::InvalidUrl(error.to_string()))?;
        self.http.check_url(&url)?;
        let mut response = self
            .http
            .reqwest_client()
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(HttpError::from_reqwest)?;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(HttpError::from_reqwest)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge {
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let mut answer = http::Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            *headers = response.headers().clone();
        }
        answer
            .body(bytes)
            .map_err(|error| HttpError::Protocol(error.to_string()))
    }
}
