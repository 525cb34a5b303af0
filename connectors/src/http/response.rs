//! The response as a workflow sees it: the step's output `{status, headers, body}`.
//!
//! - Header names are lower case. A repeated header becomes one string joined with ", "
//!   (what RFC 9110 says it means), except `set-cookie`, which cannot be joined that way
//!   and is always an array of strings. Values that are not UTF-8 are read lossily.
//! - The body is parsed as JSON when the content type says JSON (`application/json`,
//!   `*/*+json`) and it parses; otherwise it is the text, and bytes that are not UTF-8 (an
//!   image, a zip) are base64 (standard alphabet, padded), recorded in `body_encoding`.
//!   An empty body is the empty string.
//! - Any status is a response, not an error: what a 404 means is the workflow's call. A
//!   redirect that is not followed (its `Location` is not http or https) is returned too.

use reqwest::header::{CONTENT_TYPE, HeaderMap, SET_COOKIE};
use serde_json::{Map, Value, json};

use super::error::HttpError;

#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Map<String, Value>,
    pub body: Value,
    pub body_encoding: BodyEncoding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Json,
    Text,
    Base64,
}

impl HttpResponse {
    /// The `http.request` node's output.
    pub fn into_output(self) -> Value {
        json!({ "status": self.status, "headers": self.headers, "body": self.body })
    }

    pub(crate) async fn read(
        mut response: reqwest::Response,
        max_bytes: usize,
    ) -> Result<Self, HttpError> {
        // A declared length over the limit fails early; a smaller or missing one proves
        // nothing, so the loop below counts what actually arrives.
        if response
            .content_length()
            .is_some_and(|length| length > max_bytes as u64)
        {
            return Err(HttpError::TooLarge { limit: max_bytes });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(HttpError::from_reqwest)? {
            if bytes.len() + chunk.len() > max_bytes {
                return Err(HttpError::TooLarge { limit: max_bytes });
            }
            bytes.extend_from_slice(&chunk);
        }
        let headers = response.headers();
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok());
        let (body, body_encoding) = decode_body(content_type, bytes);
        Ok(Self {
            status: response.status().as_u16(),
            headers: headers_to_json(headers),
            body,
            body_encoding,
        })
    }
}

pub(crate) fn headers_to_json(headers: &HeaderMap) -> Map<String, Value> {
    let mut map = Map::new();
    for name in headers.keys() {
        let values = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let value = if name == SET_COOKIE {
            Value::Array(values.map(Value::String).collect())
        } else {
            Value::String(values.collect::<Vec<_>>().join(", "))
        };
        map.insert(name.as_str().to_owned(), value);
    }
    map
}

pub(crate) fn decode_body(content_type: Option<&str>, bytes: Vec<u8>) -> (Value, BodyEncoding) {
    if content_type.is_some_and(is_json_media_type)
        && let Ok(value) = serde_json::from_slice(&bytes)
    {
        return (value, BodyEncoding::Json);
    }
    match String::from_utf8(bytes) {
        Ok(text) => (Value::String(text), BodyEncoding::Text),
        Err(error) => (
            Value::String(base64(error.as_bytes())),
            BodyEncoding::Base64,
        ),
    }
}

fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some((_, subtype)) => subtype == "json" || subtype.ends_with("+json"),
        None => false,
    }
}

/// Standard base64 with padding (RFC 4648 §4); the engine crate has no base64 dependency
/// for this and HTTP basic auth (`OutgoingRequest::sign`), its only uses.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextets =
            [n >> 18, n >> 12, n >> 6, n].map(|s| char::from(ALPHABET[(s & 63) as usize]));
        let kept = group.len() + 1;
        out.extend(&sextets[..kept]);
        out.extend(std::iter::repeat_n('=', 4 - kept));
    }
    out
}
