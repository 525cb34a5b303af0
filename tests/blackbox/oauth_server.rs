//! A fake OAuth2 provider on loopback for the OAuth2 black-box tests: an authorization
//! server (`/authorize`, `/token`) that checks what a real one checks, and an API (`/api/me`)
//! that accepts only the access tokens it issued and still honours.
//!
//! It records every protocol violation instead of trusting the client (a wrong client
//! secret, a PKCE verifier whose S256 is not the challenge, a reused code, a refresh token
//! already rotated away), so a test asserts there were none; and it remembers every secret
//! it handed out or received, so a test can look for them where they must not be.

#![allow(dead_code)] // Each test uses a different part of the provider.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// How the provider behaves; tests change it as they go.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// `expires_in` of the tokens a code exchange issues.
    pub code_token_lifetime: u64,
    /// `expires_in` of the tokens a refresh issues.
    pub refreshed_token_lifetime: u64,
    /// `expires_in` of client-credentials tokens.
    pub client_token_lifetime: u64,
    /// Refresh tokens are refused with `invalid_grant` (revoked by the user).
    pub refresh_revoked: bool,
    /// How long a refresh takes to answer.
    pub refresh_delay: Duration,
    /// The user denies the authorization at `/authorize`.
    pub user_denies: bool,
    /// The API answers 401 to the first access token it issued, as if revoked early.
    pub api_refuses_first_token: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            code_token_lifetime: 3600,
            refreshed_token_lifetime: 3600,
            client_token_lifetime: 3600,
            refresh_revoked: false,
            refresh_delay: Duration::ZERO,
            user_denies: false,
            api_refuses_first_token: false,
        }
    }
}

/// What the provider saw.
#[derive(Debug, Default)]
pub struct Record {
    pub code_exchanges: usize,
    pub refreshes: usize,
    pub client_credentials: usize,
    /// The access token of each API call and the status it got.
    pub api_calls: Vec<(String, u16)>,
    pub violations: Vec<String>,
    /// Every access token issued, in order.
    pub issued_access: Vec<String>,
    /// Every token, code, verifier and the client secret.
    pub secrets: Vec<String>,
}

struct State {
    behaviour: Behaviour,
    record: Record,
    /// code -> (PKCE challenge, redirect URI)
    codes: HashMap<String, (String, String)>,
    live_refresh_tokens: HashSet<String>,
    live_access_tokens: HashSet<String>,
}

pub struct Provider {
    pub server: MockServer,
    pub client_id: String,
    pub client_secret: String,
    state: Arc<Mutex<State>>,
}

#[derive(Clone, Copy)]
enum Endpoint {
    Authorize,
    Token,
    Api,
}

struct Handler {
    endpoint: Endpoint,
    client_id: String,
    client_secret: String,
    state: Arc<Mutex<State>>,
}

impl Provider {
    pub async fn start(behaviour: Behaviour) -> Self {
        let server = MockServer::start().await;
        let client_id = format!("client-{}", Uuid::new_v4().simple());
        // A character Basic authentication must encode (RFC 6749 §2.3.1).
        let client_secret = format!("client-secret+{}", Uuid::new_v4().simple());
        let state = Arc::new(Mutex::new(State {
            behaviour,
            record: Record {
                secrets: vec![client_secret.clone()],
                ..Record::default()
            },
            codes: HashMap::new(),
            live_refresh_tokens: HashSet::new(),
            live_access_tokens: HashSet::new(),
        }));
        for (verb, route, endpoint) in [
            ("GET", "/authorize", Endpoint::Authorize),
            ("POST", "/token", Endpoint::Token),
            ("GET", "/api/me", Endpoint::Api),
        ] {
            Mock::given(method(verb))
                .and(path(route))
                .respond_with(Handler {
                    endpoint,
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    state: Arc::clone(&state),
                })
                .mount(&server)
                .await;
        }
        Self {
            server,
            client_id,
            client_secret,
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.uri())
    }

    pub fn change(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut lock(&self.state).behaviour);
    }

    /// Reads what the provider saw.
    pub fn seen<T>(&self, read: impl FnOnce(&Record) -> T) -> T {
        read(&lock(&self.state).record)
    }

    pub fn secrets(&self) -> Vec<String> {
        self.seen(|record| record.secrets.clone())
    }

    #[track_caller]
    pub fn assert_no_violations(&self) {
        let violations = self.seen(|record| record.violations.clone());
        assert!(violations.is_empty(), "protocol violations: {violations:?}");
    }

    /// The registration a client gives `startOAuth2Connection`.
    pub fn registration(&self) -> serde_json::Value {
        json!({
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "authorizationUrl": self.url("/authorize"),
            "tokenUrl": self.url("/token"),
            "scopes": ["profile", "api:read"],
        })
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Respond for Handler {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.state);
        match self.endpoint {
            Endpoint::Authorize => self.authorize(&mut state, request),
            Endpoint::Token => self.token(&mut state, request),
            Endpoint::Api => api(&mut state, request),
        }
    }
}

impl Handler {
    fn authorize(&self, state: &mut State, request: &Request) -> ResponseTemplate {
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let field = |name: &str| query.get(name).cloned().unwrap_or_default();
        let redirect_uri = field("redirect_uri");
        let mut problems = Vec::new();
        if field("response_type") != "code" {
            problems.push("response_type is not code");
        }
        if field("client_id") != self.client_id {
            problems.push("unknown client_id");
        }
        if field("code_challenge_method") != "S256" || field("code_challenge").is_empty() {
            problems.push("no S256 PKCE challenge");
        }
        if field("state").len() < 43 {
            problems.push("state shorter than 256 bits");
        }
        if field("scope") != "profile api:read" {
            problems.push("unexpected scope");
        }
        if !problems.is_empty() {
            state
                .record
                .violations
                .extend(problems.into_iter().map(str::to_owned));
            return ResponseTemplate::new(400);
        }
        let mut location = reqwest::Url::parse(&redirect_uri).expect("a redirect URI");
        if state.behaviour.user_denies {
            location
                .query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("state", &field("state"));
        } else {
            let code = format!("code-{}", Uuid::new_v4().simple());
            state.record.secrets.push(code.clone());
            state.codes.insert(
                code.clone(),
                (field("code_challenge"), redirect_uri.clone()),
            );
            location
                .query_pairs_mut()
                .append_pair("code", &code)
                .append_pair("state", &field("state"));
        }
        ResponseTemplate::new(302).insert_header("location", location.as_str())
    }

    fn token(&self, state: &mut State, request: &Request) -> ResponseTemplate {
        let form = form(&request.body);
        let field = |name: &str| form.get(name).cloned().unwrap_or_default();
        if basic_auth(request) != Some((self.client_id.clone(), self.client_secret.clone())) {
            state
                .record
                .violations
                .push("the client did not authenticate with HTTP Basic".into());
            return oauth_error(401, "invalid_client");
        }
        match field("grant_type").as_str() {
            "authorization_code" => {
                state.record.code_exchanges += 1;
                let verifier = field("code_verifier");
                state.record.secrets.push(verifier.clone());
                let Some((challenge, redirect_uri)) = state.codes.remove(&field("code")) else {
                    state
                        .record
                        .violations
                        .push("an unknown or reused code".into());
                    return oauth_error(400, "invalid_grant");
                };
                if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
                    state
                        .record
                        .violations
                        .push("S256(code_verifier) is not the challenge".into());
                    return oauth_error(400, "invalid_grant");
                }
                if field("redirect_uri") != redirect_uri {
                    state
                        .record
                        .violations
                        .push("the redirect_uri differs from the authorization's".into());
                    return oauth_error(400, "invalid_grant");
                }
                let lifetime = state.behaviour.code_token_lifetime;
                issue(state, lifetime, true)
            }
            "refresh_token" => {
                state.record.refreshes += 1;
                let delay = state.behaviour.refresh_delay;
                if state.behaviour.refresh_revoked {
                    return oauth_error(400, "invalid_grant").set_delay(delay);
                }
                if !state.live_refresh_tokens.remove(&field("refresh_token")) {
                    state
                        .record
                        .violations
                        .push("an unknown or rotated refresh token".into());
                    return oauth_error(400, "invalid_grant");
                }
                let lifetime = state.behaviour.refreshed_token_lifetime;
                issue(state, lifetime, true).set_delay(delay)
            }
            "client_credentials" => {
                state.record.client_credentials += 1;
                let lifetime = state.behaviour.client_token_lifetime;
                issue(state, lifetime, false)
            }
            other => {
                state
                    .record
                    .violations
                    .push(format!("unexpected grant_type {other}"));
                oauth_error(400, "unsupported_grant_type")
            }
        }
    }
}

/// Issues an access token (and a refresh token), recording both.
fn issue(state: &mut State, lifetime: u64, with_refresh: bool) -> ResponseTemplate {
    let n = state.record.issued_access.len() + 1;
    let access = format!("access-{n}-{}", Uuid::new_v4().simple());
    state.record.issued_access.push(access.clone());
    state.record.secrets.push(access.clone());
    state.live_access_tokens.insert(access.clone());
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": "profile api:read",
    });
    if with_refresh {
        let refresh = format!("refresh-{n}-{}", Uuid::new_v4().simple());
        state.record.secrets.push(refresh.clone());
        state.live_refresh_tokens.insert(refresh.clone());
        body["refresh_token"] = json!(refresh);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

fn api(state: &mut State, request: &Request) -> ResponseTemplate {
    let token = request
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let refused_early = state.behaviour.api_refuses_first_token
        && state.record.issued_access.first() == Some(&token);
    let status = if state.live_access_tokens.contains(&token) && !refused_early {
        200
    } else {
        401
    };
    state.record.api_calls.push((token, status));
    if status == 200 {
        ResponseTemplate::new(200).set_body_json(json!({"user": "ann", "plan": "pro"}))
    } else {
        ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_token"}))
    }
}

fn oauth_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": code,
        "error_description": "see https://provider.example.com/errors",
    }))
}

fn basic_auth(request: &Request) -> Option<(String, String)> {
    let header = request.headers.get("authorization")?.to_str().ok()?;
    let pair = String::from_utf8(STANDARD.decode(header.strip_prefix("Basic ")?).ok()?).ok()?;
    let (id, secret) = pair.split_once(':')?;
    let decode = |part: &str| form(format!("x={part}").as_bytes()).remove("x");
    Some((decode(id)?, decode(secret)?))
}

/// An `application/x-www-form-urlencoded` body, read the way a URL's query is.
pub fn form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    reqwest::Url::parse(&format!("http://form.invalid/?{text}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}
