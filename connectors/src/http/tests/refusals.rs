//! End to end through `HttpClient` with private addresses refused: nothing non-public is
//! reached, whether named directly, spelled oddly, resolved, or redirected to. A wiremock
//! "canary" on loopback records any request that slips through.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::{client, get, permissive_policy, request_count, strict_policy};
use crate::http::{AddressClass, HttpError};

fn assert_forbidden(result: Result<crate::http::HttpResponse, HttpError>, url: &str) {
    match result {
        Err(HttpError::Forbidden { .. }) => {}
        other => panic!("{url}: expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn non_public_targets_are_forbidden() {
    let strict = client(strict_policy(Vec::new()));
    let urls = [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://017700000001/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::1]/",
        "https://192.0.2.1/",
    ];
    for url in urls {
        assert_forbidden(get(&strict, url).await, url);
    }
}

#[tokio::test]
async fn forbidden_error_names_the_host_and_the_reason() {
    let strict = client(strict_policy(Vec::new()));
    let error = get(
        &strict,
        "http://169.254.169.254/latest/meta-data?token=s3cret",
    )
    .await
    .expect_err("the metadata service is refused");
    assert_eq!(
        error,
        HttpError::Forbidden {
            host: "169.254.169.254".to_owned(),
            reason: AddressClass::LinkLocal,
        }
    );
    assert!(!error.to_string().contains("s3cret"), "{error}");
    assert!(!error.is_transient());
    assert_eq!(
        get(&strict, "http://localhost:9/").await,
        Err(HttpError::Forbidden {
            host: "localhost".to_owned(),
            reason: AddressClass::Loopback,
        })
    );
}

/// The canary listens on loopback; every spelling of its address, and a name resolving to
/// it, is refused before a single request reaches it.
#[tokio::test]
async fn no_connection_is_made_to_a_refused_target() {
    let canary = MockServer::start().await;
    let port = canary.address().port();
    let strict = client(strict_policy(Vec::new()));
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
    ];
    for url in &urls {
        assert_forbidden(get(&strict, url).await, url);
    }
    assert_eq!(request_count(&canary).await, 0);
}

#[tokio::test]
async fn only_http_and_https_are_spoken_even_with_private_allowed() {
    for policy in [strict_policy(Vec::new()), permissive_policy()] {
        let http = client(policy);
        for url in [
            "file:///etc/passwd",
            "ftp://x/",
            "gopher://",
            "gopher://x/",
            "ws://x/",
        ] {
            match get(&http, url).await {
                Err(HttpError::InvalidUrl(_)) => {}
                other => panic!("{url}: expected InvalidUrl, got {other:?}"),
            }
        }
    }
}

/// The trusted server (allowed by exact address) redirects; every hop is vetted again.
#[tokio::test]
async fn redirects_to_non_public_targets_are_refused() {
    let trusted = MockServer::start().await;
    let canary = MockServer::start().await;
    let canary_port = canary.address().port();
    let strict = client(strict_policy(vec![*trusted.address()]));
    let targets = [
        format!("http://127.0.0.1:{canary_port}/"),
        format!("http://localhost:{canary_port}/"),
        format!("http://[::ffff:127.0.0.1]:{canary_port}/"),
        format!("http://2130706433:{canary_port}/"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ];
    for (index, target) in targets.iter().enumerate() {
        Mock::given(method("GET"))
            .and(path(format!("/hop/{index}")))
            .respond_with(ResponseTemplate::new(302).insert_header("location", target.as_str()))
            .mount(&trusted)
            .await;
    }

    for (index, target) in targets.iter().enumerate() {
        let url = format!("{}/hop/{index}", trusted.uri());
        match get(&strict, &url).await {
            Err(HttpError::Forbidden { .. }) => {}
            other => panic!("redirect to {target}: expected Forbidden, got {other:?}"),
        }
    }
    assert_eq!(request_count(&canary).await, 0);
    assert_eq!(request_count(&trusted).await, targets.len());
}

/// reqwest does not follow a `Location` outside http(s): the step gets the redirect itself.
#[tokio::test]
async fn redirect_to_a_foreign_scheme_is_not_followed() {
    let trusted = MockServer::start().await;
    Mock::given(path("/to-file"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "file:///etc/passwd"))
        .mount(&trusted)
        .await;
    let strict = client(strict_policy(vec![*trusted.address()]));

    let response = get(&strict, &format!("{}/to-file", trusted.uri()))
        .await
        .expect("the redirect comes back as a response");

    assert_eq!(response.status, 302);
    assert_eq!(response.body, "");
}

/// The allow-list is exact: the trusted server's own redirects are followed, under the
/// production policy, and its address on another port stays refused.
#[tokio::test]
async fn trusted_exact_address_is_reachable_with_private_refused() {
    let trusted = MockServer::start().await;
    Mock::given(path("/start"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", "/end"))
        .mount(&trusted)
        .await;
    Mock::given(path("/end"))
        .respond_with(ResponseTemplate::new(200).set_body_string("arrived"))
        .mount(&trusted)
        .await;
    let strict = client(strict_policy(vec![*trusted.address()]));

    let response = get(&strict, &format!("{}/start", trusted.uri()))
        .await
        .expect("the trusted server is reachable");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "arrived");

    let other_port = trusted.address().port().wrapping_add(1);
    let url = format!("http://127.0.0.1:{other_port}/");
    assert_forbidden(get(&strict, &url).await, &url);
    let url = format!("http://localhost:{}/end", trusted.address().port());
    assert_forbidden(get(&strict, &url).await, &url);
}

#[tokio::test]
async fn vetting_a_host_for_another_protocol_follows_the_same_rules() {
    use crate::http::{HttpClient, HttpPolicy};

    let strict = HttpClient::new(HttpPolicy::default()).expect("client");
    let refused = strict.vet_host("127.0.0.1", 5432).await;
    assert!(
        matches!(refused, Err(HttpError::Forbidden { .. })),
        "{refused:?}"
    );
    let by_name = strict.vet_host("localhost", 25).await;
    assert!(
        matches!(by_name, Err(HttpError::Forbidden { .. })),
        "{by_name:?}"
    );
    let open = HttpClient::new(HttpPolicy {
        allow_private: true,
        ..HttpPolicy::default()
    })
    .expect("client");
    let allowed = open.vet_host("127.0.0.1", 5432).await;
    assert_eq!(
        allowed.map(|addrs| addrs.iter().map(|a| a.port()).collect::<Vec<_>>()),
        Ok(vec![5432])
    );
}
