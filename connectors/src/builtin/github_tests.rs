//! The `github` connector against a loopback fake speaking the GitHub REST API's shapes:
//! the exact requests, paging, GitHub's two ways of rate limiting, the `newIssues`
//! poll's cursor rules (first poll, new items oldest first, pull requests skipped), and
//! that the SSRF rules and the token's secrecy hold.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{Map, Value, json};
use wiremock::matchers::{any, bearer_token, body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use aos_domain::connection::AuthKind;

use super::{API_VERSION, GithubConnector, MAX_POLL_PAGES, next_page, primary_limit_wait};
use crate::builtin::test_support::{Fixture, bearer, client};
use crate::{Connector, ConnectorError, Polled, Registry};

const TOKEN: &str = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";

fn fixture(server: &MockServer) -> Fixture {
    Fixture::new("github", json!({"baseUrl": server.uri()}), bearer(TOKEN))
}

async fn execute(
    server: &MockServer,
    operation: &str,
    params: Value,
) -> Result<Value, ConnectorError> {
    GithubConnector::default()
        .execute(&fixture(server).ctx(), operation, &params)
        .await
}

async fn poll(server: &MockServer, cursor: Option<Value>) -> Result<Polled, ConnectorError> {
    GithubConnector::default()
        .poll(
            &fixture(server).ctx(),
            "newIssues",
            &json!({"owner": "octo-org", "repo": "hello.world"}),
            cursor.as_ref(),
        )
        .await
}

/// An issue as GitHub lists it (trimmed to the fields that matter here).
fn issue(number: u64) -> Value {
    json!({
        "id": 1_000_000 + number,
        "node_id": "MDU6SXNzdWUx",
        "url": format!("https://api.github.com/repos/octo-org/hello.world/issues/{number}"),
        "html_url": format!("https://github.com/octo-org/hello.world/issues/{number}"),
        "number": number,
        "state": "open",
        "title": format!("Issue {number}"),
        "body": "It is broken",
        "user": {"login": "octocat", "id": 1},
        "labels": [{"id": 208045946, "name": "bug", "color": "f29513"}],
        "assignees": [{"login": "hubot", "id": 2}],
        "comments": 0,
        "created_at": "2026-03-01T10:00:00Z",
        "updated_at": "2026-03-01T10:00:00Z"
    })
}

fn pull_request(number: u64) -> Value {
    let mut item = issue(number);
    item["pull_request"] = json!({
        "url": format!("https://api.github.com/repos/octo-org/hello.world/pulls/{number}"),
        "merged_at": null
    });
    item
}

/// The list of issues mock for one `page`, with the query the poll must send.
async fn mount_issues_page(server: &MockServer, page: u64, items: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/repos/octo-org/hello.world/issues"))
        .and(bearer_token(TOKEN))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", API_VERSION))
        .and(query_param("state", "all"))
        .and(query_param("sort", "created"))
        .and(query_param("direction", "desc"))
        .and(query_param("per_page", "100"))
        .and(query_param("page", page.to_string()))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(items)))
        .expect(1)
        .mount(server)
        .await;
}

fn numbers(polled: &Polled) -> Vec<u64> {
    polled
        .items
        .iter()
        .filter_map(|item| item["number"].as_u64())
        .collect()
}

#[tokio::test]
async fn create_issue_posts_the_issue_with_githubs_headers_and_returns_its_address() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/octo-org/hello.world/issues"))
        .and(bearer_token(TOKEN))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(body_json(json!({
            "title": "Found a bug",
            "body": "I'm having a problem with this.",
            "labels": ["bug"],
            "assignees": ["octocat"]
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(issue(1347)))
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(
        &server,
        "createIssue",
        json!({
            "owner": "octo-org",
            "repo": "hello.world",
            "title": "Found a bug",
            "body": "I'm having a problem with this.",
            "labels": ["bug"],
            "assignees": ["octocat"]
        }),
    )
    .await;

    assert_eq!(
        output,
        Ok(json!({
            "number": 1347,
            "url": "https://api.github.com/repos/octo-org/hello.world/issues/1347",
            "htmlUrl": "https://github.com/octo-org/hello.world/issues/1347",
            "title": "Issue 1347",
            "state": "open"
        }))
    );
}

#[tokio::test]
async fn a_rejected_issue_is_invalid_with_githubs_validation_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "Issue", "code": "invalid", "field": "assignees"}],
            "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
            "status": "422"
        })))
        .mount(&server)
        .await;

    let error = execute(
        &server,
        "createIssue",
        json!({"owner": "octo-org", "repo": "hello.world", "title": "x", "assignees": ["ghost"]}),
    )
    .await;

    assert_eq!(
        error,
        Err(ConnectorError::Invalid(
            "GitHub answered HTTP 422: Validation Failed (Issue.assignees: invalid)".to_owned()
        ))
    );
}

#[tokio::test]
async fn bad_credentials_are_unauthorized_without_the_token_in_the_message() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401"
        })))
        .mount(&server)
        .await;

    let error = execute(&server, "listRepositories", json!({}))
        .await
        .expect_err("refused");

    assert_eq!(
        error,
        ConnectorError::Unauthorized("GitHub answered HTTP 401: Bad credentials".to_owned())
    );
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn list_repositories_sends_the_paging_parameters_and_reads_the_next_page_link() {
    let server = MockServer::start().await;
    let link = format!(
        "<{0}/user/repos?visibility=private&per_page=2&page=3>; rel=\"next\", <{0}/user/repos?visibility=private&per_page=2&page=9>; rel=\"last\", <{0}/user/repos?visibility=private&per_page=2&page=1>; rel=\"first\"",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path("/user/repos"))
        .and(bearer_token(TOKEN))
        .and(header("x-github-api-version", API_VERSION))
        .and(query_param("visibility", "private"))
        .and(query_param("per_page", "2"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", link.as_str())
                .set_body_json(json!([
                    {"id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "Hello-World", "full_name": "octocat/Hello-World",
                     "private": true, "html_url": "https://github.com/octocat/Hello-World", "owner": {"login": "octocat"}},
                    {"id": 1296270, "name": "Spoon-Knife", "full_name": "octocat/Spoon-Knife",
                     "private": true, "html_url": "https://github.com/octocat/Spoon-Knife", "owner": {"login": "octocat"}}
                ])),
        )
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(
        &server,
        "listRepositories",
        json!({"visibility": "private", "perPage": 2, "page": 2}),
    )
    .await;

    assert_eq!(
        output,
        Ok(json!({
            "repositories": [
                {"id": 1296269, "name": "Hello-World", "fullName": "octocat/Hello-World", "private": true,
                 "htmlUrl": "https://github.com/octocat/Hello-World"},
                {"id": 1296270, "name": "Spoon-Knife", "fullName": "octocat/Spoon-Knife", "private": true,
                 "htmlUrl": "https://github.com/octocat/Spoon-Knife"}
            ],
            "nextPage": 3
        }))
    );
}

#[tokio::test]
async fn the_last_page_of_repositories_has_no_next_page() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user/repos"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;

    let output = execute(&server, "listRepositories", json!({})).await;

    assert_eq!(output, Ok(json!({"repositories": [], "nextPage": null})));
}

#[tokio::test]
async fn a_spent_primary_rate_limit_waits_until_its_reset() {
    let server = MockServer::start().await;
    let reset = Utc::now().timestamp() + 120;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-used", "5000")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(json!({
                    "message": "API rate limit exceeded for user ID 1.",
                    "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"
                })),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = execute(&server, "listRepositories", json!({}))
        .await
        .expect_err("rate limited");

    let ConnectorError::RateLimited {
        retry_after: Some(wait),
        message,
    } = &error
    else {
        panic!("expected a rate limit with a wait, got {error:?}");
    };
    assert!(
        (Duration::from_secs(115)..=Duration::from_secs(120)).contains(wait),
        "{wait:?}"
    );
    assert_eq!(
        message,
        "GitHub answered HTTP 403: API rate limit exceeded for user ID 1."
    );
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn a_secondary_rate_limit_waits_for_its_retry_after() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "60")
                .insert_header("x-ratelimit-remaining", "4000")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
        )
        .mount(&server)
        .await;

    let error = execute(&server, "listRepositories", json!({})).await;

    assert!(
        matches!(&error, Err(ConnectorError::RateLimited { retry_after: Some(wait), .. }) if *wait == Duration::from_secs(60)),
        "{error:?}"
    );
}

#[tokio::test]
async fn any_other_403_is_a_plain_refusal() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "4999")
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&server)
        .await;

    let error = execute(&server, "listRepositories", json!({})).await;

    assert_eq!(
        error,
        Err(ConnectorError::Failed(
            "GitHub answered HTTP 403: Resource not accessible by integration".to_owned()
        ))
    );
}

#[test]
fn the_primary_limit_wait_counts_from_now_to_the_reset() {
    let now = Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("a time");
    let headers = |remaining: &str, reset: i64| -> Map<String, Value> {
        let value =
            json!({"x-ratelimit-remaining": remaining, "x-ratelimit-reset": reset.to_string()});
        value.as_object().cloned().expect("an object")
    };

    assert_eq!(
        primary_limit_wait(&headers("0", now.timestamp() + 90), now),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        primary_limit_wait(&headers("0", now.timestamp() - 5), now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        primary_limit_wait(&headers("12", now.timestamp() + 90), now),
        None
    );
    assert_eq!(primary_limit_wait(&Map::new(), now), None);
}

#[test]
fn the_next_page_comes_from_the_next_link_only() {
    let headers = |link: &str| -> Map<String, Value> {
        json!({"link": link})
            .as_object()
            .cloned()
            .expect("an object")
    };

    assert_eq!(
        next_page(&headers(
            "<https://api.github.com/user/repos?page=1>; rel=\"prev\", <https://api.github.com/user/repos?page=3>; rel=\"next\""
        )),
        Some(3)
    );
    assert_eq!(
        next_page(&headers(
            "<https://api.github.com/user/repos?page=1>; rel=\"first\""
        )),
        None
    );
    assert_eq!(next_page(&Map::new()), None);
}

#[tokio::test]
async fn the_first_poll_returns_no_items_only_the_highest_number_pull_requests_included() {
    let server = MockServer::start().await;
    mount_issues_page(&server, 1, vec![pull_request(12), issue(11), issue(9)]).await;

    let polled = poll(&server, None).await;

    assert_eq!(
        polled,
        Ok(Polled {
            items: Vec::new(),
            cursor: json!(12),
        })
    );
}

#[tokio::test]
async fn the_first_poll_of_an_empty_repository_starts_from_zero() {
    let server = MockServer::start().await;
    mount_issues_page(&server, 1, Vec::new()).await;

    let polled = poll(&server, None).await;

    assert_eq!(
        polled,
        Ok(Polled {
            items: Vec::new(),
            cursor: json!(0),
        })
    );
}

#[tokio::test]
async fn a_later_poll_returns_the_new_issues_oldest_first_and_skips_pull_requests() {
    let server = MockServer::start().await;
    mount_issues_page(
        &server,
        1,
        vec![
            pull_request(15),
            issue(14),
            issue(13),
            pull_request(12),
            issue(11),
            issue(10),
            issue(9),
        ],
    )
    .await;

    let polled = poll(&server, Some(json!(10))).await.expect("a poll");

    assert_eq!(numbers(&polled), [11, 13, 14]);
    assert_eq!(polled.cursor, json!(15));
    assert_eq!(
        polled.items[0],
        json!({
            "id": 1_000_011,
            "number": 11,
            "title": "Issue 11",
            "body": "It is broken",
            "state": "open",
            "url": "https://api.github.com/repos/octo-org/hello.world/issues/11",
            "htmlUrl": "https://github.com/octo-org/hello.world/issues/11",
            "author": "octocat",
            "labels": ["bug"],
            "assignees": ["hubot"],
            "createdAt": "2026-03-01T10:00:00Z"
        })
    );
}

#[tokio::test]
async fn a_poll_with_nothing_new_keeps_the_cursor() {
    let server = MockServer::start().await;
    mount_issues_page(&server, 1, vec![issue(10), issue(9)]).await;

    let polled = poll(&server, Some(json!(10))).await;

    assert_eq!(
        polled,
        Ok(Polled {
            items: Vec::new(),
            cursor: json!(10),
        })
    );
}

#[tokio::test]
async fn a_poll_reads_further_pages_until_it_reaches_an_issue_already_seen() {
    let server = MockServer::start().await;
    mount_issues_page(&server, 1, (151..=250).rev().map(issue).collect()).await;
    mount_issues_page(&server, 2, (51..=150).rev().map(issue).collect()).await;
    mount_issues_page(&server, 3, (31..=50).rev().map(issue).collect()).await;

    let polled = poll(&server, Some(json!(40))).await.expect("a poll");

    assert_eq!(numbers(&polled), (41..=250).collect::<Vec<_>>());
    assert_eq!(polled.cursor, json!(250));
}

#[tokio::test]
async fn a_poll_reads_at_most_the_page_limit() {
    let server = MockServer::start().await;
    let full_page: Vec<Value> = (1..=100).rev().map(|offset| issue(5000 + offset)).collect();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(full_page)))
        .expect(MAX_POLL_PAGES)
        .mount(&server)
        .await;

    let polled = poll(&server, Some(json!(1))).await.expect("a poll");

    assert_eq!(polled.cursor, json!(5100));
}

#[tokio::test]
async fn a_cursor_that_is_not_an_issue_number_is_refused() {
    let server = MockServer::start().await;

    let polled = poll(&server, Some(json!("yesterday"))).await;

    assert_eq!(
        polled,
        Err(ConnectorError::Invalid(
            "the newIssues cursor must be an issue number (a non-negative integer)".to_owned()
        ))
    );
}

#[tokio::test]
async fn an_unknown_trigger_is_unsupported() {
    let server = MockServer::start().await;

    let polled = GithubConnector::default()
        .poll(&fixture(&server).ctx(), "newStars", &json!({}), None)
        .await;

    assert_eq!(
        polled,
        Err(ConnectorError::Unsupported(
            "the `github` connector has no polling trigger `newStars`; it has newIssues".to_owned()
        ))
    );
}

#[tokio::test]
async fn names_that_could_steer_the_path_and_other_wrong_params_are_refused_unsent() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let name_rule = "must be a GitHub name: up to 100 letters, digits, -, _ and .";
    let cases = [
        (
            "createIssue",
            json!({"owner": "..", "repo": "x", "title": "t"}),
            format!("params.owner {name_rule}"),
        ),
        (
            "createIssue",
            json!({"owner": "octo", "repo": "x/../../user", "title": "t"}),
            format!("params.repo {name_rule}"),
        ),
        (
            "createIssue",
            json!({"owner": "octo", "repo": "x"}),
            "params.title is required: a non-empty string".to_owned(),
        ),
        (
            "createIssue",
            json!({"owner": "octo", "repo": "x", "title": "t", "labels": "bug"}),
            "params.labels must be a list of non-empty strings".to_owned(),
        ),
        (
            "listRepositories",
            json!({"visibility": "secret"}),
            "params.visibility must be all, public or private".to_owned(),
        ),
        (
            "listRepositories",
            json!({"perPage": 101}),
            "params.perPage must be an integer from 1 to 100".to_owned(),
        ),
        (
            "listRepositories",
            json!({"page": 0}),
            "params.page must be an integer from 1 to 4294967295".to_owned(),
        ),
    ];
    for (operation, params, expected) in cases {
        let error = execute(&server, operation, params).await;

        assert_eq!(error, Err(ConnectorError::Invalid(expected)));
    }
}

#[tokio::test]
async fn the_ssrf_rules_refuse_the_loopback_fake_to_a_client_without_private_access() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(0)
        .mount(&server)
        .await;
    let fixture = Fixture::with_client(
        "github",
        json!({"baseUrl": server.uri()}),
        bearer(TOKEN),
        client(false),
    );

    let polled = GithubConnector::default()
        .poll(
            &fixture.ctx(),
            "newIssues",
            &json!({"owner": "octo-org", "repo": "hello.world"}),
            None,
        )
        .await;

    assert!(
        matches!(&polled, Err(ConnectorError::Failed(message)) if message.contains("refused to reach 127.0.0.1")),
        "{polled:?}"
    );
}

#[tokio::test]
async fn the_connection_test_gets_the_user_and_names_the_login() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .and(bearer_token(TOKEN))
        .and(header("x-github-api-version", API_VERSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "login": "octocat", "id": 1, "type": "User", "name": "monalisa octocat"
        })))
        .expect(1)
        .mount(&server)
        .await;

    let result = GithubConnector::default()
        .test(&fixture(&server).ctx())
        .await;

    assert!(result.ok, "{result:?}");
    assert_eq!(
        result.message,
        "GitHub accepted the token: signed in as octocat"
    );
}

#[tokio::test]
async fn a_connection_test_with_bad_credentials_fails_without_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .mount(&server)
        .await;

    let result = GithubConnector::default()
        .test(&fixture(&server).ctx())
        .await;

    assert!(!result.ok);
    assert_eq!(
        result.message,
        "the service refused the credentials: GitHub answered HTTP 401: Bad credentials"
    );
}

#[test]
fn the_registry_lists_github_with_its_trigger() {
    let registry = Registry::builtin();
    let github = registry.get("github").expect("github is built in").info();

    assert_eq!(github.auth_kinds, vec![AuthKind::Bearer, AuthKind::OAuth2]);
    let operations: Vec<&str> = github
        .operations
        .iter()
        .map(|operation| operation.key)
        .collect();
    assert_eq!(operations, ["createIssue", "listRepositories"]);
    let trigger = github.trigger("newIssues").expect("the newIssues trigger");
    assert_eq!(trigger.parameters["required"], json!(["owner", "repo"]));
    assert_eq!(trigger.output["properties"]["number"]["type"], "integer");
    assert_eq!(
        registry.check_connection(
            "github",
            AuthKind::Bearer,
            &json!({"baseUrl": "https://ghe.example.com/api/v3"})
        ),
        Ok(())
    );
    assert_eq!(
        registry.check_connection("github", AuthKind::Bearer, &json!({"org": "octo"})),
        Err("settings: unknown setting `org`; known: baseUrl".to_owned())
    );
}
