//! `github`: create issues, list repositories and watch a repository for new issues
//! through the GitHub REST API (version 2022-11-28), with a token or an OAuth2 connection.
//!
//! Rate limits: GitHub says "slow down" with 403 or 429. A spent primary limit
//! (`x-ratelimit-remaining: 0`) is `RateLimited` until `x-ratelimit-reset`; a secondary
//! limit carries `Retry-After`. Any other 403 is a refusal of this request (`Failed`).
//!
//! `newIssues` invariants:
//! - the cursor is the highest issue number seen. Issues and pull requests share one
//!   number sequence that only grows, so anything created after a poll has a higher
//!   number than everything that poll saw, pull requests included;
//! - the first poll (no cursor) returns no items, only the cursor: a new trigger does not
//!   fire for every issue the repository already has;
//! - pull requests (items with `pull_request`) are never items;
//! - items come oldest first, and one poll reads at most [`MAX_POLL_PAGES`] pages of 100
//!   (newest first, stopping at the first issue already seen): if more issues than that
//!   were opened between two polls, the oldest of them are skipped.

use std::time::Duration;

use aos_domain::connection::{AuthKind, ConnectionTestResult};
use aos_domain::workflow::node_types::HttpMethod;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::fields::{self, BASE_URL_SETTING};
use super::http_check::TEST_TIMEOUT;
use crate::http::{HttpResponse, OutgoingRequest};
use crate::{
    Connector, ConnectorContext, ConnectorError, ConnectorInfo, OperationInfo, Polled, call,
};

pub const DEFAULT_BASE_URL: &str = "https://api.github.com";

/// The REST API version this connector was written against.
pub const API_VERSION: &str = "2022-11-28";

/// GitHub's largest page.
const MAX_PER_PAGE: u64 = 100;

/// How many pages of issues one poll reads at most (see the module's invariants).
pub const MAX_POLL_PAGES: u64 = 10;

/// GitHub's own limit on owner and repository names.
const MAX_NAME_LEN: usize = 100;

/// How many of GitHub's validation errors a message quotes.
const QUOTED_ERRORS: usize = 3;

pub struct GithubConnector {
    info: ConnectorInfo,
}

impl Default for GithubConnector {
    fn default() -> Self {
        Self {
            info: ConnectorInfo {
                key: "github",
                name: "GitHub",
                description: "Create issues, list repositories and start workflows on new issues, with a GitHub token.",
                auth_kinds: vec![AuthKind::Bearer, AuthKind::OAuth2],
                operations: vec![create_issue_info(), list_repositories_info()],
                triggers: vec![new_issues_info()],
                settings: json!({
                    "type": "object",
                    "properties": {
                        BASE_URL_SETTING: {
                            "type": "string",
                            "format": "uri",
                            "title": "API base URL",
                            "description": "Where the REST API is reached; for GitHub Enterprise Server, https://<host>/api/v3.",
                            "default": DEFAULT_BASE_URL
                        }
                    },
                    "additionalProperties": false
                }),
            },
        }
    }
}

fn name_schema(title: &str, description: &str) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_LEN,
        "pattern": "^[A-Za-z0-9._-]+$",
        "title": title,
        "description": description
    })
}

fn repository_params() -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        "owner".to_owned(),
        name_schema(
            "Owner",
            "The user or organization that owns the repository.",
        ),
    );
    properties.insert(
        "repo".to_owned(),
        name_schema("Repository", "The repository's name, without the owner."),
    );
    properties
}

fn issue_schema() -> Value {
    json!({
        "type": "object",
        "required": ["id", "number", "title", "state", "url", "htmlUrl"],
        "properties": {
            "id": {"type": "integer"},
            "number": {"type": "integer", "description": "The issue's number within its repository."},
            "title": {"type": "string"},
            "body": {"type": ["string", "null"]},
            "state": {"enum": ["open", "closed"]},
            "url": {"type": "string", "format": "uri", "description": "The issue in the REST API."},
            "htmlUrl": {"type": "string", "format": "uri", "description": "The issue on github.com."},
            "author": {"type": ["string", "null"], "description": "The login of who opened it."},
            "labels": {"type": "array", "items": {"type": "string"}},
            "assignees": {"type": "array", "items": {"type": "string"}},
            "createdAt": {"type": "string", "format": "date-time"}
        }
    })
}

fn create_issue_info() -> OperationInfo {
    let mut properties = repository_params();
    for (field, schema) in [
        (
            "title",
            json!({"type": "string", "minLength": 1, "title": "Title"}),
        ),
        (
            "body",
            json!({"type": "string", "title": "Body", "description": "Markdown."}),
        ),
        (
            "labels",
            json!({"type": "array", "items": {"type": "string", "minLength": 1}, "title": "Labels", "description": "Label names; only people with push access can set them."}),
        ),
        (
            "assignees",
            json!({"type": "array", "items": {"type": "string", "minLength": 1}, "title": "Assignees", "description": "Logins of the people to assign."}),
        ),
    ] {
        properties.insert(field.to_owned(), schema);
    }
    OperationInfo {
        key: "createIssue",
        name: "Create an issue",
        description: "Opens an issue in a repository.",
        parameters: json!({
            "type": "object",
            "required": ["owner", "repo", "title"],
            "properties": properties,
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["number", "url", "htmlUrl", "title", "state"],
            "properties": {
                "number": {"type": "integer"},
                "url": {"type": "string", "format": "uri", "description": "The issue in the REST API."},
                "htmlUrl": {"type": "string", "format": "uri", "description": "The issue on github.com."},
                "title": {"type": "string"},
                "state": {"enum": ["open", "closed"]}
            }
        }),
    }
}

fn list_repositories_info() -> OperationInfo {
    OperationInfo {
        key: "listRepositories",
        name: "List repositories",
        description: "Lists the repositories the token's user can reach, one page at a time.",
        parameters: json!({
            "type": "object",
            "properties": {
                "visibility": {
                    "enum": ["all", "public", "private"],
                    "default": "all",
                    "title": "Visibility"
                },
                "perPage": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PER_PAGE,
                    "default": 30,
                    "title": "Page size"
                },
                "page": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 1,
                    "title": "Page",
                    "description": "Which page to read, from 1."
                }
            },
            "additionalProperties": false
        }),
        output: json!({
            "type": "object",
            "required": ["repositories", "nextPage"],
            "properties": {
                "repositories": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "name", "fullName", "private", "htmlUrl"],
                        "properties": {
                            "id": {"type": "integer"},
                            "name": {"type": "string"},
                            "fullName": {"type": "string", "description": "owner/name"},
                            "private": {"type": "boolean"},
                            "htmlUrl": {"type": "string", "format": "uri"}
                        }
                    }
                },
                "nextPage": {
                    "type": ["integer", "null"],
                    "description": "The page to ask for next; null on the last page."
                }
            }
        }),
    }
}

fn new_issues_info() -> OperationInfo {
    OperationInfo {
        key: "newIssues",
        name: "New issue",
        description: "Starts a run for each issue opened in a repository (pull requests are left out), oldest first.",
        parameters: json!({
            "type": "object",
            "required": ["owner", "repo"],
            "properties": repository_params(),
            "additionalProperties": false
        }),
        output: issue_schema(),
    }
}

#[async_trait]
impl Connector for GithubConnector {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    fn check_settings(&self, settings: &Value) -> Result<(), String> {
        fields::check_base_url_settings(settings)
    }

    async fn execute(
        &self,
        ctx: &ConnectorContext<'_>,
        operation: &str,
        params: &Value,
    ) -> Result<Value, ConnectorError> {
        let base = fields::base_url(&ctx.connection.settings, DEFAULT_BASE_URL)?;
        match operation {
            "createIssue" => create_issue(ctx, &base, params).await,
            "listRepositories" => list_repositories(ctx, &base, params).await,
            other => Err(ConnectorError::Invalid(format!(
                "the `github` connector has no operation `{other}`; it has createIssue, listRepositories"
            ))),
        }
    }

    async fn test(&self, ctx: &ConnectorContext<'_>) -> ConnectionTestResult {
        let outcome = match fields::base_url(&ctx.connection.settings, DEFAULT_BASE_URL) {
            Ok(base) => {
                let mut request = api_request(HttpMethod::Get, format!("{base}/user"));
                request.timeout = Some(TEST_TIMEOUT);
                send(ctx, request).await
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(response) => ConnectionTestResult {
                ok: true,
                message: format!(
                    "GitHub accepted the token: signed in as {}",
                    response
                        .body
                        .get("login")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                ),
            },
            Err(error) => ConnectionTestResult {
                ok: false,
                message: error.to_string(),
            },
        }
    }

    async fn poll(
        &self,
        ctx: &ConnectorContext<'_>,
        trigger: &str,
        params: &Value,
        cursor: Option<&Value>,
    ) -> Result<Polled, ConnectorError> {
        if trigger != "newIssues" {
            return Err(ConnectorError::Unsupported(format!(
                "the `github` connector has no polling trigger `{trigger}`; it has newIssues"
            )));
        }
        let base = fields::base_url(&ctx.connection.settings, DEFAULT_BASE_URL)?;
        poll_new_issues(ctx, &base, params, cursor).await
    }
}

async fn create_issue(
    ctx: &ConnectorContext<'_>,
    base: &str,
    params: &Value,
) -> Result<Value, ConnectorError> {
    let fields = fields::params_object(
        params,
        "createIssue",
        &["owner", "repo", "title", "body", "labels", "assignees"],
    )?;
    let repository = repository_path(fields)?;
    let mut body = json!({"title": fields::required_str(fields, "title")?});
    // An empty body is a legitimate issue body, unlike an empty title.
    match fields.get("body") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => body["body"] = json!(text),
        Some(_) => {
            return Err(ConnectorError::Invalid(
                "params.body must be a string".to_owned(),
            ));
        }
    }
    for list in ["labels", "assignees"] {
        if let Some(items) = fields::optional_strings(fields, list)? {
            body[list] = json!(items);
        }
    }
    let mut request = api_request(
        HttpMethod::Post,
        format!("{base}/repos/{repository}/issues"),
    );
    request.body = Some(body);
    let issue = send(ctx, request).await?.body;
    Ok(json!({
        "number": issue.get("number").cloned().unwrap_or(Value::Null),
        "url": issue.get("url").cloned().unwrap_or(Value::Null),
        "htmlUrl": issue.get("html_url").cloned().unwrap_or(Value::Null),
        "title": issue.get("title").cloned().unwrap_or(Value::Null),
        "state": issue.get("state").cloned().unwrap_or(Value::Null),
    }))
}

async fn list_repositories(
    ctx: &ConnectorContext<'_>,
    base: &str,
    params: &Value,
) -> Result<Value, ConnectorError> {
    let fields = fields::params_object(
        params,
        "listRepositories",
        &["visibility", "perPage", "page"],
    )?;
    let mut request = api_request(HttpMethod::Get, format!("{base}/user/repos"));
    match fields::optional_str(fields, "visibility")? {
        None => {}
        Some(visibility @ ("all" | "public" | "private")) => request
            .query
            .push(("visibility".to_owned(), visibility.to_owned())),
        Some(_) => {
            return Err(ConnectorError::Invalid(
                "params.visibility must be all, public or private".to_owned(),
            ));
        }
    }
    if let Some(per_page) = fields::optional_integer(fields, "perPage", 1..=MAX_PER_PAGE)? {
        request
            .query
            .push(("per_page".to_owned(), per_page.to_string()));
    }
    if let Some(page) = fields::optional_integer(fields, "page", 1..=u64::from(u32::MAX))? {
        request.query.push(("page".to_owned(), page.to_string()));
    }
    let response = send(ctx, request).await?;
    let repositories = response.body.as_array().ok_or_else(|| {
        ConnectorError::Failed("GitHub's answer is not a list of repositories".to_owned())
    })?;
    let field =
        |repository: &Value, name: &str| repository.get(name).cloned().unwrap_or(Value::Null);
    let repositories: Vec<Value> = repositories
        .iter()
        .map(|repository| {
            json!({
                "id": field(repository, "id"),
                "name": field(repository, "name"),
                "fullName": field(repository, "full_name"),
                "private": field(repository, "private"),
                "htmlUrl": field(repository, "html_url"),
            })
        })
        .collect();
    Ok(json!({
        "repositories": repositories,
        "nextPage": next_page(&response.headers),
    }))
}

async fn poll_new_issues(
    ctx: &ConnectorContext<'_>,
    base: &str,
    params: &Value,
    cursor: Option<&Value>,
) -> Result<Polled, ConnectorError> {
    let fields = fields::params_object(params, "newIssues", &["owner", "repo"])?;
    let repository = repository_path(fields)?;
    let seen = match cursor {
        None => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            ConnectorError::Invalid(
                "the newIssues cursor must be an issue number (a non-negative integer)".to_owned(),
            )
        })?),
    };
    // The first poll only needs the newest number.
    let pages = if seen.is_some() { MAX_POLL_PAGES } else { 1 };
    let mut highest = seen.unwrap_or(0);
    let mut new_issues = Vec::new();
    for page in 1..=pages {
        let mut request = api_request(HttpMethod::Get, format!("{base}/repos/{repository}/issues"));
        for (name, value) in [
            ("state", "all".to_owned()),
            ("sort", "created".to_owned()),
            ("direction", "desc".to_owned()),
            ("per_page", MAX_PER_PAGE.to_string()),
            ("page", page.to_string()),
        ] {
            request.query.push((name.to_owned(), value));
        }
        let response = send(ctx, request).await?;
        let items = response.body.as_array().ok_or_else(|| {
            ConnectorError::Failed("GitHub's answer is not a list of issues".to_owned())
        })?;
        let mut reached_seen = false;
        for item in items {
            let number = item.get("number").and_then(Value::as_u64).ok_or_else(|| {
                ConnectorError::Failed("GitHub listed an issue without a number".to_owned())
            })?;
            highest = highest.max(number);
            match seen {
                Some(seen) if number <= seen => reached_seen = true,
                Some(_) if item.get("pull_request").is_none() => {
                    new_issues.push(issue_output(item))
                }
                _ => {}
            }
        }
        if reached_seen || items.len() < MAX_PER_PAGE as usize {
            break;
        }
    }
    new_issues.sort_by_key(|issue| issue["number"].as_u64());
    Ok(Polled {
        items: new_issues,
        cursor: json!(highest),
    })
}

fn issue_output(issue: &Value) -> Value {
    let field = |name: &str| issue.get(name).cloned().unwrap_or(Value::Null);
    let names = |list: &str, name: &str| -> Vec<Value> {
        issue
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.get(name).cloned())
            .collect()
    };
    json!({
        "id": field("id"),
        "number": field("number"),
        "title": field("title"),
        "body": field("body"),
        "state": field("state"),
        "url": field("url"),
        "htmlUrl": field("html_url"),
        "author": issue.get("user").and_then(|user| user.get("login")).cloned().unwrap_or(Value::Null),
        "labels": names("labels", "name"),
        "assignees": names("assignees", "login"),
        "createdAt": field("created_at"),
    })
}

/// `{owner}/{repo}`, each checked to be a plain name, so neither can steer the request
/// to another path (`..`, `/`, `?`).
fn repository_path(fields: &Map<String, Value>) -> Result<String, ConnectorError> {
    let mut parts = Vec::with_capacity(2);
    for field in ["owner", "repo"] {
        let name = fields::required_str(fields, field)?;
        let plain = name.len() <= MAX_NAME_LEN
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
        if !plain {
            return Err(ConnectorError::Invalid(format!(
                "params.{field} must be a GitHub name: up to {MAX_NAME_LEN} letters, digits, -, _ and ."
            )));
        }
        parts.push(name);
    }
    Ok(parts.join("/"))
}

fn api_request(method: HttpMethod, url: String) -> OutgoingRequest {
    let mut request = OutgoingRequest::new(method, url);
    request.headers.push((
        "Accept".to_owned(),
        "application/vnd.github+json".to_owned(),
    ));
    request
        .headers
        .push(("X-GitHub-Api-Version".to_owned(), API_VERSION.to_owned()));
    request
}

/// Sends `request` signed with the connection; a status of 400 or more is the error it
/// amounts to. Like [`call::send`], with GitHub's way of saying "rate limited".
async fn send(
    ctx: &ConnectorContext<'_>,
    mut request: OutgoingRequest,
) -> Result<HttpResponse, ConnectorError> {
    request.sign(ctx.credentials);
    if request.idempotency_key.is_none() {
        request.idempotency_key = ctx.idempotency_key.map(str::to_owned);
    }
    let response = ctx
        .http
        .send(request)
        .await
        .map_err(call::transport_error)?;
    if response.status < 400 {
        return Ok(response);
    }
    Err(refusal(&response, Utc::now()))
}

fn refusal(response: &HttpResponse, now: DateTime<Utc>) -> ConnectorError {
    let status = response.status;
    let message = format!(
        "GitHub answered HTTP {status}{}",
        explanation(&response.body)
    );
    if matches!(status, 403 | 429) {
        if let Some(wait) = primary_limit_wait(&response.headers, now) {
            return ConnectorError::RateLimited {
                retry_after: Some(wait),
                message,
            };
        }
        let retry_after = call::retry_after(&response.headers, now);
        if retry_after.is_some() || status == 429 {
            return ConnectorError::RateLimited {
                retry_after,
                message,
            };
        }
    }
    match status {
        401 => ConnectorError::Unauthorized(message),
        // "Validation Failed": the issue as asked cannot be created.
        422 => ConnectorError::Invalid(message),
        _ => ConnectorError::Failed(message),
    }
}

/// The wait until a spent primary rate limit resets, from `x-ratelimit-remaining: 0`
/// and `x-ratelimit-reset` (Unix seconds).
pub fn primary_limit_wait(headers: &Map<String, Value>, now: DateTime<Utc>) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(Value::as_str).map(str::trim);
    if header("x-ratelimit-remaining")? != "0" {
        return None;
    }
    let reset: i64 = header("x-ratelimit-reset")?.parse().ok()?;
    let at = DateTime::from_timestamp(reset, 0)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// `: <message> (<errors>)` from GitHub's error body, or nothing.
fn explanation(body: &Value) -> String {
    let Some(message) = body.get("message").and_then(Value::as_str) else {
        return String::new();
    };
    let details: Vec<String> = body
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(QUOTED_ERRORS)
        .map(|error| {
            if let Some(text) = error.get("message").and_then(Value::as_str) {
                return text.to_owned();
            }
            let part = |name: &str| error.get(name).and_then(Value::as_str).unwrap_or("?");
            format!("{}.{}: {}", part("resource"), part("field"), part("code"))
        })
        .collect();
    if details.is_empty() {
        format!(": {message}")
    } else {
        format!(": {message} ({})", details.join("; "))
    }
}

/// The `page` of the `rel="next"` link in GitHub's `Link` header.
fn next_page(headers: &Map<String, Value>) -> Option<u64> {
    let links = headers.get("link")?.as_str()?;
    links.split(',').find_map(|link| {
        let (target, relations) = link.split_once(';')?;
        if !relations.contains("rel=\"next\"") {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let url = url::Url::parse(target).ok()?;
        url.query_pairs()
            .find(|(name, _)| name == "page")
            .and_then(|(_, page)| page.parse().ok())
    })
}

#[cfg(test)]
#[path = "github_tests.rs"]
mod tests;
