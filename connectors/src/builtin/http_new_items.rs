//! The `http` connector's polling trigger `newItems`: a GET of a JSON listing, and the
//! items in it whose id was not seen before.
//!
//! The rule:
//! - the listing is the answer's JSON body, or the array at `itemsPath` (dotted: object
//!   keys, and array indexes as numbers, `data.items` or `results.0.rows`) inside it; it
//!   must be an array;
//! - an item's id is its `idField` (default `id`), a string or a number (compared as
//!   text); items without one are passed over, since nothing could tell them apart;
//! - the listing is taken to run oldest first, as most APIs page chronologically
//!   (`order: "newestFirst"` says it runs the other way, and it is reversed first); only
//!   its newest [`MAX_REMEMBERED_IDS`] items are looked at, since older ones cannot be
//!   told apart from items forgotten;
//! - new items are returned oldest first, in the listing's order; an id listed twice
//!   counts once;
//! - the cursor remembers the ids of the listing, and as many ids seen earlier as room
//!   allows, at most [`MAX_REMEMBERED_IDS`], newest kept; the first poll (no cursor, or one
//!   this code did not write) only remembers, and returns nothing.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::{ConnectorError, Polled};

/// How many ids the cursor keeps, and how many items of a listing are looked at.
pub const MAX_REMEMBERED_IDS: usize = 1_000;

/// The trigger's parameters, as its schema describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItemsParams {
    pub url: String,
    pub items_path: Vec<String>,
    pub id_field: String,
    pub newest_first: bool,
}

impl NewItemsParams {
    pub fn parse(params: &Value) -> Result<Self, ConnectorError> {
        let invalid = |message: &str| ConnectorError::Invalid(format!("params.{message}"));
        let Some(fields) = params.as_object() else {
            return Err(ConnectorError::Invalid(
                "params must be an object".to_owned(),
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|key| !matches!(key.as_str(), "url" | "itemsPath" | "idField" | "order"))
        {
            return Err(invalid(&format!(
                "{unknown} is not a parameter of `newItems`; it takes url, itemsPath, idField and order"
            )));
        }
        let url = fields
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("url must be a URL string"))?;
        let items_path = match fields.get("itemsPath") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(path)) if path.trim().is_empty() => Vec::new(),
            Some(Value::String(path)) => path.split('.').map(str::to_owned).collect(),
            Some(_) => {
                return Err(invalid(
                    "itemsPath must be a dotted path such as `data.items`",
                ));
            }
        };
        let id_field = match fields.get("idField") {
            None | Some(Value::Null) => "id".to_owned(),
            Some(Value::String(field)) if !field.trim().is_empty() => field.clone(),
            Some(_) => return Err(invalid("idField must be a non-empty string")),
        };
        let newest_first = match fields.get("order") {
            None | Some(Value::Null) => false,
            Some(Value::String(order)) if order == "oldestFirst" => false,
            Some(Value::String(order)) if order == "newestFirst" => true,
            Some(_) => return Err(invalid("order must be `oldestFirst` or `newestFirst`")),
        };
        Ok(Self {
            url: url.to_owned(),
            items_path,
            id_field,
            newest_first,
        })
    }
}

/// The new items of `body` after `cursor`, and the next cursor (see the module's rule).
pub fn new_items(
    params: &NewItemsParams,
    body: &Value,
    cursor: Option<&Value>,
) -> Result<Polled, ConnectorError> {
    let mut listing = listing_at(body, &params.items_path)?.clone();
    if params.newest_first {
        listing.reverse();
    }
    let newest = listing.len().saturating_sub(MAX_REMEMBERED_IDS);
    let listing = &listing[newest..];
    let seen_before = cursor.and_then(remembered_ids);
    let mut known: HashSet<String> = seen_before.iter().flatten().cloned().collect();
    let mut listed_ids = Vec::new();
    let mut items = Vec::new();
    for item in listing {
        let Some(id) = id_of(item, &params.id_field) else {
            continue;
        };
        if !known.insert(id.clone()) {
            if !listed_ids.contains(&id) {
                listed_ids.push(id);
            }
            continue;
        }
        listed_ids.push(id);
        if seen_before.is_some() {
            items.push(item.clone());
        }
    }
    let listed: HashSet<&String> = listed_ids.iter().collect();
    let mut remembered: Vec<String> = seen_before
        .unwrap_or_default()
        .into_iter()
        .filter(|id| !listed.contains(id))
        .collect();
    remembered.extend(listed_ids);
    let forget = remembered.len().saturating_sub(MAX_REMEMBERED_IDS);
    remembered.drain(..forget);
    Ok(Polled {
        items,
        cursor: json!({ "seen": remembered }),
    })
}

fn listing_at<'b>(body: &'b Value, path: &[String]) -> Result<&'b Vec<Value>, ConnectorError> {
    let mut at = body;
    for (depth, segment) in path.iter().enumerate() {
        let next = match at {
            Value::Object(fields) => fields.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        at = next.ok_or_else(|| {
            ConnectorError::Failed(format!(
                "the answer has nothing at `{}` of itemsPath",
                path[..=depth].join(".")
            ))
        })?;
    }
    at.as_array().ok_or_else(|| {
        let place = if path.is_empty() {
            "the answer's body".to_owned()
        } else {
            format!("`{}` in the answer", path.join("."))
        };
        ConnectorError::Failed(format!("{place} is not a JSON array of items"))
    })
}

/// The ids a cursor of ours holds; `None` for anything else.
fn remembered_ids(cursor: &Value) -> Option<Vec<String>> {
    cursor
        .get("seen")?
        .as_array()?
        .iter()
        .map(|id| id.as_str().map(str::to_owned))
        .collect()
}

fn id_of(item: &Value, field: &str) -> Option<String> {
    match item.get(field)? {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(extra: Value) -> NewItemsParams {
        let mut raw = json!({"url": "https://api.example.com/items"});
        if let (Some(fields), Some(more)) = (raw.as_object_mut(), extra.as_object()) {
            fields.extend(more.clone());
        }
        NewItemsParams::parse(&raw).unwrap_or_else(|error| panic!("{error}"))
    }

    fn ids(items: &[Value]) -> Vec<Value> {
        items.iter().map(|item| item["id"].clone()).collect()
    }

    #[test]
    fn the_first_poll_remembers_and_returns_nothing() {
        let body = json!([{"id": 1}, {"id": "b"}]);

        let polled = new_items(&params(json!({})), &body, None).expect("a listing");

        assert!(polled.items.is_empty());
        assert_eq!(polled.cursor, json!({"seen": ["1", "b"]}));
    }

    #[test]
    fn new_ids_are_returned_in_listing_order_once() {
        let p = params(json!({}));
        let first = new_items(&p, &json!([{"id": 1}, {"id": 2}]), None).expect("listing");
        let body =
            json!([{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}, {"id": 3}, {"name": "no id"}]);

        let second = new_items(&p, &body, Some(&first.cursor)).expect("listing");
        let third = new_items(&p, &body, Some(&second.cursor)).expect("listing");

        assert_eq!(ids(&second.items), [json!(3), json!(4)]);
        assert!(third.items.is_empty());
        assert_eq!(third.cursor, json!({"seen": ["1", "2", "3", "4"]}));
    }

    #[test]
    fn a_newest_first_listing_is_returned_oldest_first() {
        let p =
            params(json!({"order": "newestFirst", "itemsPath": "data.items", "idField": "key"}));
        let first =
            new_items(&p, &json!({"data": {"items": [{"key": "a"}]}}), None).expect("listing");
        let body = json!({"data": {"items": [{"key": "c"}, {"key": "b"}, {"key": "a"}]}});

        let second = new_items(&p, &body, Some(&first.cursor)).expect("listing");

        let keys: Vec<&Value> = second.items.iter().map(|item| &item["key"]).collect();
        assert_eq!(keys, [&json!("b"), &json!("c")]);
    }

    #[test]
    fn the_cursor_keeps_the_newest_ids_only() {
        let p = params(json!({}));
        let listing: Vec<Value> = (0..1_500).map(|n| json!({"id": n})).collect();
        let first = new_items(&p, &Value::Array(listing), None).expect("listing");
        let seen = remembered_ids(&first.cursor).expect("our cursor");
        assert_eq!(seen.len(), MAX_REMEMBERED_IDS);
        assert_eq!(seen.first().map(String::as_str), Some("500"));

        // Earlier ids stay while there is room, the listing's own come last.
        let second = new_items(&p, &json!([{"id": 1_500}]), Some(&first.cursor)).expect("listing");
        let seen = remembered_ids(&second.cursor).expect("our cursor");
        assert_eq!(seen.len(), MAX_REMEMBERED_IDS);
        assert_eq!(seen.last().map(String::as_str), Some("1500"));
        assert_eq!(ids(&second.items), [json!(1_500)]);
    }

    #[test]
    fn a_cursor_of_another_shape_counts_as_a_first_poll() {
        let polled =
            new_items(&params(json!({})), &json!([{"id": 1}]), Some(&json!(42))).expect("listing");
        assert!(polled.items.is_empty());
    }

    #[test]
    fn a_body_that_is_no_listing_fails_naming_the_path() {
        let p = params(json!({"itemsPath": "data.items"}));
        let missing = new_items(&p, &json!({"data": {}}), None);
        assert!(
            matches!(&missing, Err(ConnectorError::Failed(message)) if message.contains("nothing at `data.items`")),
            "{missing:?}"
        );
        let not_array = new_items(&params(json!({})), &json!({"items": []}), None);
        assert!(
            matches!(&not_array, Err(ConnectorError::Failed(message)) if message.contains("not a JSON array")),
            "{not_array:?}"
        );
    }

    /// The trigger as the poller calls it: a signed GET of a real listing.
    mod polling {
        use std::time::Duration;

        use aos_domain::connection::{
            AuthKind, Connection, ConnectionName, ConnectionStatus, Credentials,
        };
        use aos_domain::ids::{ConnectionId, WorkspaceId};
        use serde_json::{Value, json};
        use wiremock::matchers::{bearer_token, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};

        use super::super::super::HttpConnector;
        use crate::http::{HttpClient, HttpPolicy};
        use crate::{Connector, ConnectorContext, ConnectorError, Polled};

        async fn poll(
            server: &MockServer,
            cursor: Option<&Value>,
        ) -> Result<Polled, ConnectorError> {
            let now = chrono::Utc::now();
            let connection = Connection {
                id: ConnectionId::generate(),
                workspace_id: WorkspaceId::generate(),
                name: ConnectionName::parse("Feed").expect("a name"),
                connector: "http".to_owned(),
                auth_kind: AuthKind::Bearer,
                status: ConnectionStatus::Valid,
                settings: json!({}),
                created_at: now,
                updated_at: now,
                last_tested_at: None,
                last_test_ok: None,
            };
            let credentials = Credentials::Bearer {
                token: "feed-token".to_owned(),
            };
            let http = HttpClient::new(HttpPolicy {
                allow_private: true,
                ..HttpPolicy::default()
            })
            .expect("an HTTP client");
            let ctx = ConnectorContext {
                connection: &connection,
                credentials: &credentials,
                http: &http,
                idempotency_key: None,
            };
            let params = json!({"url": format!("{}/feed", server.uri()), "itemsPath": "items"});
            HttpConnector::default()
                .poll(&ctx, "newItems", &params, cursor)
                .await
        }

        #[tokio::test]
        async fn a_signed_listing_yields_its_new_items() {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .and(path("/feed"))
                .and(bearer_token("feed-token"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(json!({"items": [{"id": "a"}, {"id": "b"}]})),
                )
                .expect(2)
                .mount(&server)
                .await;

            let first = poll(&server, None).await.expect("a listing");
            let earlier = json!({"seen": ["a"]});
            let second = poll(&server, Some(&earlier)).await.expect("a listing");

            assert!(first.items.is_empty());
            assert_eq!(first.cursor, json!({"seen": ["a", "b"]}));
            assert_eq!(second.items, [json!({"id": "b"})]);
        }

        async fn answered(answer: ResponseTemplate) -> Result<Polled, ConnectorError> {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(answer)
                .mount(&server)
                .await;
            poll(&server, None).await
        }

        #[tokio::test]
        async fn refusals_rate_limits_and_text_answers_are_told_apart() {
            let refused = answered(ResponseTemplate::new(401)).await;
            let limited =
                answered(ResponseTemplate::new(429).insert_header("retry-after", "3")).await;
            let text = answered(ResponseTemplate::new(200).set_body_string("<html>")).await;

            assert!(
                matches!(refused, Err(ConnectorError::Unauthorized(_))),
                "{refused:?}"
            );
            assert!(
                matches!(limited, Err(ConnectorError::RateLimited { retry_after: Some(wait), .. }) if wait == Duration::from_secs(3)),
                "{limited:?}"
            );
            assert!(
                matches!(&text, Err(ConnectorError::Failed(message)) if message.contains("not JSON")),
                "{text:?}"
            );
        }
    }

    #[test]
    fn bad_params_are_invalid() {
        for (raw, fragment) in [
            (json!({}), "params.url"),
            (
                json!({"url": "https://x.io", "itemsPath": 1}),
                "params.itemsPath",
            ),
            (
                json!({"url": "https://x.io", "idField": ""}),
                "params.idField",
            ),
            (
                json!({"url": "https://x.io", "order": "random"}),
                "params.order",
            ),
            (
                json!({"url": "https://x.io", "limit": 5}),
                "limit is not a parameter",
            ),
            (json!([]), "params must be an object"),
        ] {
            let parsed = NewItemsParams::parse(&raw);
            assert!(
                matches!(&parsed, Err(ConnectorError::Invalid(message)) if message.contains(fragment)),
                "{raw}: {parsed:?}"
            );
        }
    }
}
