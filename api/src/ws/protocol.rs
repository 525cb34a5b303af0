//! The wire format of both protocols: what a client may send, parsed strictly per
//! protocol, and what the server sends.
//!
//! Parsing is two steps (an envelope with a string `type`, then the fields that type
//! needs) so that the close reason names the actual fault. A message type of the other
//! protocol is unknown: a `start` on `graphql-transport-ws` is as invalid as `foo`.

use async_graphql::{
    ErrorExtensionValues, Request, Response, ServerError, http::WebSocketProtocols,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub(super) enum ClientMessage {
    ConnectionInit {
        payload: Map<String, Value>,
    },
    Ping,
    Pong,
    /// `subscribe`, or the legacy `start`.
    Subscribe {
        id: String,
        request: Box<Request>,
    },
    /// `complete`, or the legacy `stop`.
    Complete {
        id: String,
    },
    /// The legacy `connection_terminate`.
    Terminate,
}

/// Why a client message was rejected; the text is the close reason.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct InvalidMessage(pub(super) String);

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
}

pub(super) fn parse_client_message(
    protocol: WebSocketProtocols,
    bytes: &[u8],
) -> Result<ClientMessage, InvalidMessage> {
    let envelope: Envelope = serde_json::from_slice(bytes)
        .map_err(|error| InvalidMessage(format!("Invalid message received: {error}")))?;
    let Envelope { kind, id, payload } = envelope;
    let transport_ws = protocol == WebSocketProtocols::GraphQLWS;
    match kind.as_str() {
        "connection_init" => Ok(ClientMessage::ConnectionInit {
            payload: init_payload(payload)?,
        }),
        "ping" if transport_ws => Ok(ClientMessage::Ping),
        "pong" if transport_ws => Ok(ClientMessage::Pong),
        "subscribe" if transport_ws => subscribe(&kind, id, payload),
        "start" if !transport_ws => subscribe(&kind, id, payload),
        "complete" if transport_ws => Ok(ClientMessage::Complete {
            id: required_id(&kind, id)?,
        }),
        "stop" if !transport_ws => Ok(ClientMessage::Complete {
            id: required_id(&kind, id)?,
        }),
        "connection_terminate" if !transport_ws => Ok(ClientMessage::Terminate),
        _ => Err(InvalidMessage(format!("Unknown message type \"{kind}\""))),
    }
}

/// An absent or null payload is an empty one, so `ConnectionInit` always sees an object.
fn init_payload(payload: Option<Value>) -> Result<Map<String, Value>, InvalidMessage> {
    match payload {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(fields)) => Ok(fields),
        Some(_) => Err(InvalidMessage(
            "The \"connection_init\" payload must be an object".to_owned(),
        )),
    }
}

fn subscribe(
    kind: &str,
    id: Option<String>,
    payload: Option<Value>,
) -> Result<ClientMessage, InvalidMessage> {
    let id = required_id(kind, id)?;
    let payload = payload
        .ok_or_else(|| InvalidMessage(format!("Message \"{kind}\" requires a \"payload\"")))?;
    let request: Request = serde_json::from_value(payload)
        .map_err(|error| InvalidMessage(format!("Invalid \"{kind}\" payload: {error}")))?;
    Ok(ClientMessage::Subscribe {
        id,
        request: Box::new(request),
    })
}

fn required_id(kind: &str, id: Option<String>) -> Result<String, InvalidMessage> {
    match id {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err(InvalidMessage(format!(
            "Message \"{kind}\" requires a non-empty \"id\""
        ))),
    }
}

pub(super) enum ServerMessage<'a> {
    ConnectionAck,
    /// Legacy only: why `connection_init` was refused, sent just before the close.
    ConnectionError {
        message: &'a str,
    },
    Pong,
    /// `next`, or the legacy `data`.
    Next {
        id: &'a str,
        response: &'a Response,
    },
    /// Ends the operation `id` with these errors; no `complete` follows.
    Error {
        id: &'a str,
        errors: &'a [ServerError],
    },
    Complete {
        id: &'a str,
    },
}

#[derive(Serialize)]
struct Outgoing<'a, P> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<P>,
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    message: &'a str,
}

impl ServerMessage<'_> {
    pub(super) fn encode(&self, protocol: WebSocketProtocols) -> serde_json::Result<String> {
        match *self {
            Self::ConnectionAck => encode("connection_ack", None, None::<()>),
            Self::ConnectionError { message } => {
                encode("connection_error", None, Some(ErrorMessage { message }))
            }
            Self::Pong => encode("pong", None, None::<()>),
            Self::Next { id, response } => {
                let kind = match protocol {
                    WebSocketProtocols::GraphQLWS => "next",
                    WebSocketProtocols::SubscriptionsTransportWS => "data",
                };
                encode(kind, Some(id), Some(response))
            }
            Self::Error { id, errors } => encode("error", Some(id), Some(errors)),
            Self::Complete { id } => encode("complete", Some(id), None::<()>),
        }
    }
}

fn encode<P: Serialize>(
    kind: &'static str,
    id: Option<&str>,
    payload: Option<P>,
) -> serde_json::Result<String> {
    serde_json::to_string(&Outgoing { kind, id, payload })
}

/// A GraphQL error with the contract's stable `extensions.code`.
pub(super) fn coded_error(message: impl Into<String>, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(protocol: WebSocketProtocols, text: &str) -> Result<ClientMessage, InvalidMessage> {
        parse_client_message(protocol, text.as_bytes())
    }

    #[test]
    fn legacy_message_types_are_unknown_to_graphql_transport_ws() {
        let parsed = parse(
            WebSocketProtocols::GraphQLWS,
            r#"{"type":"start","id":"1","payload":{"query":"{ a }"}}"#,
        );

        assert_eq!(
            parsed.err(),
            Some(InvalidMessage("Unknown message type \"start\"".to_owned()))
        );
    }

    #[test]
    fn legacy_start_is_a_subscribe() {
        let parsed = parse(
            WebSocketProtocols::SubscriptionsTransportWS,
            r#"{"type":"start","id":"7","payload":{"query":"{ a }","variables":{"x":1}}}"#,
        );

        let Ok(ClientMessage::Subscribe { id, request }) = parsed else {
            panic!("expected a subscribe");
        };
        assert_eq!(id, "7");
        assert_eq!(request.query, "{ a }");
    }

    #[test]
    fn absent_init_payload_is_an_empty_object_and_a_string_payload_is_rejected() {
        let absent = parse(
            WebSocketProtocols::GraphQLWS,
            r#"{"type":"connection_init"}"#,
        );
        let text = parse(
            WebSocketProtocols::GraphQLWS,
            r#"{"type":"connection_init","payload":"token"}"#,
        );

        assert!(
            matches!(absent, Ok(ClientMessage::ConnectionInit { payload }) if payload.is_empty())
        );
        assert_eq!(
            text.err(),
            Some(InvalidMessage(
                "The \"connection_init\" payload must be an object".to_owned()
            ))
        );
    }

    #[test]
    fn subscribe_without_id_is_rejected() {
        let parsed = parse(
            WebSocketProtocols::GraphQLWS,
            r#"{"type":"subscribe","id":"","payload":{"query":"{ a }"}}"#,
        );

        assert_eq!(
            parsed.err(),
            Some(InvalidMessage(
                "Message \"subscribe\" requires a non-empty \"id\"".to_owned()
            ))
        );
    }

    #[test]
    fn next_is_data_in_the_legacy_protocol() {
        let response = Response::new(async_graphql::Value::Null);
        let message = ServerMessage::Next {
            id: "1",
            response: &response,
        };

        let legacy = message.encode(WebSocketProtocols::SubscriptionsTransportWS);
        let modern = message.encode(WebSocketProtocols::GraphQLWS);

        assert_eq!(
            legacy.ok().as_deref(),
            Some(r#"{"type":"data","id":"1","payload":{"data":null}}"#)
        );
        assert_eq!(
            modern.ok().as_deref(),
            Some(r#"{"type":"next","id":"1","payload":{"data":null}}"#)
        );
    }
}
