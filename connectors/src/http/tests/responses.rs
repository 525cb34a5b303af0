//! How a response becomes the step's output, and the body size cap.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::{client, get, permissive_policy};
use crate::http::response::{base64, decode_body};
use crate::http::{BodyEncoding, HttpError, HttpPolicy};

async fn serve(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(path(at))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn body_is_json_text_or_base64_by_content_type_and_content() {
    let server = MockServer::start().await;
    let cases = [
        (
            "/json",
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"a":[1,2]}"#, "application/json; charset=utf-8"),
            json!({"a": [1, 2]}),
            BodyEncoding::Json,
        ),
        (
            "/problem",
            ResponseTemplate::new(400)
                .set_body_raw(r#"{"title":"bad"}"#, "application/problem+json"),
            json!({"title": "bad"}),
            BodyEncoding::Json,
        ),
        (
            "/broken-json",
            ResponseTemplate::new(200).set_body_raw("{not json", "application/json"),
            json!("{not json"),
            BodyEncoding::Text,
        ),
        (
            "/json-looking-text",
            ResponseTemplate::new(200).set_body_raw(r#"{"a":1}"#, "text/plain"),
            json!(r#"{"a":1}"#),
            BodyEncoding::Text,
        ),
        (
            "/html",
            ResponseTemplate::new(200).set_body_raw("<p>héllo</p>", "text/html"),
            json!("<p>héllo</p>"),
            BodyEncoding::Text,
        ),
        (
            "/binary",
            ResponseTemplate::new(200).set_body_raw(vec![0xff_u8, 0xfe, 0x00, 0x80], "image/png"),
            json!("//4AgA=="),
            BodyEncoding::Base64,
        ),
        (
            "/empty",
            ResponseTemplate::new(204),
            json!(""),
            BodyEncoding::Text,
        ),
    ];
    for (at, response, _, _) in &cases {
        serve(&server, at, response.clone()).await;
    }
    let http = client(permissive_policy());

    for (at, _, body, encoding) in cases {
        let response = get(&http, &format!("{}{at}", server.uri()))
            .await
            .expect("the request succeeds");
        assert_eq!(response.body, body, "{at}");
        assert_eq!(response.body_encoding, encoding, "{at}");
    }
}

#[tokio::test]
async fn error_statuses_are_responses() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/missing",
        ResponseTemplate::new(404).set_body_string("nope"),
    )
    .await;

    let response = get(
        &client(permissive_policy()),
        &format!("{}/missing", server.uri()),
    )
    .await
    .expect("a 404 is a response");

    assert_eq!(response.status, 404);
    assert_eq!(response.body, "nope");
}

#[tokio::test]
async fn headers_are_lower_case_joined_and_set_cookie_is_a_list() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/h",
        ResponseTemplate::new(200)
            .insert_header("X-Request-Id", "abc")
            .append_header("x-multi", "one")
            .append_header("x-multi", "two")
            .append_header("set-cookie", "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT")
            .append_header("set-cookie", "b=2"),
    )
    .await;

    let response = get(&client(permissive_policy()), &format!("{}/h", server.uri()))
        .await
        .expect("the request succeeds");

    assert_eq!(response.headers["x-request-id"], "abc");
    assert_eq!(response.headers["x-multi"], "one, two");
    assert_eq!(
        response.headers["set-cookie"],
        json!(["a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT", "b=2"])
    );
    assert!(
        response
            .headers
            .keys()
            .all(|name| name == &name.to_ascii_lowercase())
    );
}

#[tokio::test]
async fn output_has_status_headers_and_body() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/o",
        ResponseTemplate::new(202).set_body_json(json!({"queued": true})),
    )
    .await;

    let output = get(&client(permissive_policy()), &format!("{}/o", server.uri()))
        .await
        .expect("the request succeeds")
        .into_output();

    assert_eq!(output["status"], 202);
    assert_eq!(output["body"], json!({"queued": true}));
    assert_eq!(output["headers"]["content-type"], "application/json");
    assert_eq!(output.as_object().map(|o| o.len()), Some(3));
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large_and_one_at_the_limit_is_read() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/big",
        ResponseTemplate::new(200).set_body_string("x".repeat(1025)),
    )
    .await;
    serve(
        &server,
        "/exact",
        ResponseTemplate::new(200).set_body_string("x".repeat(1024)),
    )
    .await;
    let http = client(HttpPolicy {
        max_response_bytes: 1024,
        ..permissive_policy()
    });

    let big = get(&http, &format!("{}/big", server.uri())).await;
    let exact = get(&http, &format!("{}/exact", server.uri()))
        .await
        .expect("a body at the limit is read");

    assert_eq!(big, Err(HttpError::TooLarge { limit: 1024 }));
    assert_eq!(exact.body.as_str().map(str::len), Some(1024));
}

/// A chunked response declares no length; the cap must hold on what arrives.
#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut request = [0_u8; 4096];
        let _ = socket.read(&mut request).await;
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("200\r\n{}\r\n", "y".repeat(0x200));
        for _ in 0..64 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    });
    let http = client(HttpPolicy {
        max_response_bytes: 4096,
        ..permissive_policy()
    });

    let result = get(&http, &format!("http://{address}/stream")).await;

    assert_eq!(result, Err(HttpError::TooLarge { limit: 4096 }));
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    let vectors = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (input, expected) in vectors {
        assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
    }
    assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
}

#[test]
fn json_is_recognised_by_media_type_essence() {
    let cases = [
        (Some("application/json"), BodyEncoding::Json),
        (Some("Application/JSON ; charset=UTF-8"), BodyEncoding::Json),
        (Some("application/vnd.api+json"), BodyEncoding::Json),
        (Some("text/json"), BodyEncoding::Json),
        (Some("application/jsonp"), BodyEncoding::Text),
        (Some("text/plain"), BodyEncoding::Text),
        (None, BodyEncoding::Text),
    ];
    for (content_type, expected) in cases {
        let (_, encoding) = decode_body(content_type, b"[1]".to_vec());
        assert_eq!(encoding, expected, "{content_type:?}");
    }
}
