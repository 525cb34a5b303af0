//! The `sendEmail` parameters turned into a message and its envelope.
//!
//! Every address is parsed (lettre's RFC 5322 parser) before anything is sent, so a typo
//! fails the step without a partial delivery. Headers are encoded by lettre, so a subject
//! or name holding a line break cannot add a header. Bcc recipients are in the envelope
//! only, never in a header.

use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart};
use serde_json::{Map, Value};

use super::settings::SmtpSettings;
use crate::ConnectorError;

pub(super) const MAX_SUBJECT_CHARS: usize = 998;

/// To, Cc and Bcc together; more is a mailing list, not a workflow step.
const MAX_RECIPIENTS: usize = 100;

/// The text and HTML bodies together.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

const KNOWN_PARAMS: [&str; 8] = [
    "to", "cc", "bcc", "subject", "text", "html", "from", "replyTo",
];

/// A message ready to send.
pub(super) struct Outgoing {
    pub(super) message_id: String,
    pub(super) envelope: Envelope,
    /// The message as it goes after `DATA`.
    pub(super) formatted: Vec<u8>,
}

impl Outgoing {
    pub(super) fn compose(
        params: &Value,
        settings: &SmtpSettings,
        idempotency_key: Option<&str>,
    ) -> Result<Self, ConnectorError> {
        let fields = params
            .as_object()
            .ok_or_else(|| invalid("params of `sendEmail` must be an object".to_owned()))?;
        if let Some(unknown) = fields
            .keys()
            .find(|key| !KNOWN_PARAMS.contains(&key.as_str()))
        {
            return Err(invalid(format!(
                "params.{unknown} is not a parameter of `sendEmail`; known: {}",
                KNOWN_PARAMS.join(", ")
            )));
        }
        let to = mailboxes(fields, "to")?.unwrap_or_default();
        if to.is_empty() {
            return Err(invalid(
                "params.to is required: an address or a list of addresses".to_owned(),
            ));
        }
        let cc = mailboxes(fields, "cc")?.unwrap_or_default();
        let bcc = mailboxes(fields, "bcc")?.unwrap_or_default();
        if to.len() + cc.len() + bcc.len() > MAX_RECIPIENTS {
            return Err(invalid(format!(
                "a message may have at most {MAX_RECIPIENTS} recipients (to, cc and bcc together)"
            )));
        }
        let subject = match present(fields, "subject") {
            Some(Value::String(subject)) if subject.chars().count() <= MAX_SUBJECT_CHARS => {
                subject.clone()
            }
            Some(Value::String(_)) => {
                return Err(invalid(format!(
                    "params.subject must be at most {MAX_SUBJECT_CHARS} characters"
                )));
            }
            _ => return Err(invalid("params.subject is required: a string".to_owned())),
        };
        let text = optional_string(fields, "text")?;
        let html = optional_string(fields, "html")?;
        let body_bytes =
            text.as_ref().map_or(0, String::len) + html.as_ref().map_or(0, String::len);
        if body_bytes > MAX_BODY_BYTES {
            return Err(invalid(format!(
                "text and html together must be at most {MAX_BODY_BYTES} bytes"
            )));
        }
        let from = match optional_string(fields, "from")? {
            Some(raw) => mailbox(&raw, "from")?,
            None => settings.from.clone(),
        };
        let reply_to = optional_string(fields, "replyTo")?
            .map(|raw| mailbox(&raw, "replyTo"))
            .transpose()?;

        let message_id = message_id(idempotency_key, &from.email);
        let mut builder = Message::builder()
            .from(from)
            .subject(subject)
            .message_id(Some(message_id.clone()));
        for mailbox in to {
            builder = builder.to(mailbox);
        }
        for mailbox in cc {
            builder = builder.cc(mailbox);
        }
        for mailbox in bcc {
            builder = builder.bcc(mailbox);
        }
        if let Some(reply_to) = reply_to {
            builder = builder.reply_to(reply_to);
        }
        let message = match (text, html) {
            (Some(text), Some(html)) => {
                builder.multipart(MultiPart::alternative_plain_html(text, html))
            }
            (Some(text), None) => builder.singlepart(SinglePart::plain(text)),
            (None, Some(html)) => builder.singlepart(SinglePart::html(html)),
            (None, None) => {
                return Err(invalid(
                    "params.text or params.html is required: the message needs a body".to_owned(),
                ));
            }
        }
        .map_err(|error| invalid(format!("the message cannot be built: {error}")))?;
        Ok(Self {
            message_id,
            envelope: message.envelope().clone(),
            formatted: message.formatted(),
        })
    }

    /// Whether some envelope address needs the server's SMTPUTF8 support.
    pub(super) fn has_non_ascii_addresses(&self) -> bool {
        self.envelope
            .from()
            .into_iter()
            .chain(self.envelope.to())
            .any(|address| !AsRef::<str>::as_ref(address).is_ascii())
    }
}

fn invalid(message: String) -> ConnectorError {
    ConnectorError::Invalid(message)
}

/// `null` is the same as absent: a template that rendered nothing gives one.
fn present<'a>(fields: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    fields.get(field).filter(|value| !value.is_null())
}

fn optional_string(
    fields: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ConnectorError> {
    match present(fields, field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("params.{field} must be a string"))),
    }
}

/// A string (one address or a comma-separated list) or a list of such strings.
fn mailboxes(
    fields: &Map<String, Value>,
    field: &str,
) -> Result<Option<Vec<Mailbox>>, ConnectorError> {
    let raw: Vec<&str> = match present(fields, field) {
        None => return Ok(None),
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().ok_or_else(|| {
                    invalid(format!(
                        "params.{field} must be an address or a list of address strings"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(invalid(format!(
                "params.{field} must be an address or a list of addresses"
            )));
        }
    };
    let mut parsed = Vec::new();
    for (index, text) in raw.iter().enumerate() {
        let list: Mailboxes = text.trim().parse().map_err(|_| {
            // The position, not the value: it may be long, and it is someone's address.
            invalid(format!(
                "params.{field}[{index}] is not a valid email address (such as `ada@example.com` or `Ada <ada@example.com>`)"
            ))
        })?;
        parsed.extend(list);
    }
    Ok(Some(parsed))
}

fn mailbox(raw: &str, field: &str) -> Result<Mailbox, ConnectorError> {
    raw.trim().parse().map_err(|_| {
        invalid(format!(
            "params.{field} is not a valid email address (such as `ada@example.com` or `Ada <ada@example.com>`)"
        ))
    })
}

/// `<local@sender-domain>`: from the idempotency key when there is one, so a step sent
/// again after a crash carries the same id; random otherwise.
fn message_id(idempotency_key: Option<&str>, sender: &Address) -> String {
    // A Message-ID's left part is a dot-atom: keep letters, digits, `-` and `_`, and
    // join the runs between other characters (the key's `:` separators) with dots.
    let from_key = idempotency_key
        .map(|key| {
            key.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                .filter(|run| !run.is_empty())
                .collect::<Vec<_>>()
                .join(".")
        })
        .filter(|local| !local.is_empty());
    let local = match from_key {
        Some(local) => format!("aos.{local}"),
        None => format!("aos.{}", uuid::Uuid::new_v4().simple()),
    };
    format!("<{local}@{}>", sender.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_come_from_the_idempotency_key_when_there_is_one() {
        let sender: Address = "billing@example.com".parse().expect("an address");
        assert_eq!(
            message_id(Some("run-1:send_mail"), &sender),
            "<aos.run-1.send_mail@example.com>"
        );
        assert_eq!(
            message_id(Some("r:loop:3:mail"), &sender),
            "<aos.r.loop.3.mail@example.com>"
        );
        let random = message_id(None, &sender);
        assert!(random.starts_with("<aos.") && random.ends_with("@example.com>"));
        assert_ne!(random, message_id(None, &sender));
        assert!(message_id(Some("::"), &sender).starts_with("<aos."));
    }
}
