//! SMTP failures sorted into what the caller does next, in words a workflow author can act
//! on.
//!
//! - 535 (credentials refused) and 530 (sign-in required) are `Unauthorized`;
//! - other 4xx replies are `Failed` with the code: the server says trying later may work;
//! - 5xx replies to the message itself (`MAIL FROM`, `RCPT TO`, `DATA`) are `Invalid`:
//!   the server refused this message for good, so retrying it is pointless; 5xx anywhere
//!   else (EHLO, STARTTLS, AUTH) and transport or TLS trouble are `Failed`.
//!
//! Policy: every message passes through [`Secrets::scrub`], because a server's reply is
//! free text and a hostile or careless one may echo what the client sent: the password
//! itself and the base64 forms AUTH PLAIN and AUTH LOGIN carry it in (which the caller's
//! redactor does not know).

use std::error::Error as _;

use aos_domain::connection::{Credentials, REDACTED};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lettre::transport::smtp::Error as SmtpError;

use crate::ConnectorError;

/// Where in the session a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Connect,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    Data,
    Quit,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Connect => "connecting to the SMTP server",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "signing in",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "sending the message",
            Stage::Quit => "QUIT",
        }
    }

    fn is_about_the_message(self) -> bool {
        matches!(self, Stage::MailFrom | Stage::RcptTo | Stage::Data)
    }
}

/// Every form in which this session sends the password.
pub(super) struct Secrets {
    forms: Vec<String>,
}

impl Secrets {
    pub(super) fn of(credentials: &Credentials) -> Self {
        let mut forms = match credentials {
            Credentials::Basic { username, password } if !password.is_empty() => vec![
                password.clone(),
                // AUTH LOGIN sends the password alone, AUTH PLAIN `\0user\0password`.
                STANDARD.encode(password),
                STANDARD.encode(format!("\0{username}\0{password}")),
            ],
            _ => Vec::new(),
        };
        // The longest first, so a form containing another is replaced whole.
        forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
        Self { forms }
    }

    pub(super) fn scrub(&self, text: &str) -> String {
        self.forms
            .iter()
            .fold(text.to_owned(), |text, form| text.replace(form, REDACTED))
    }
}

/// The text of the server's negative reply (lettre keeps it as the error's source).
pub(super) fn reply_text(error: &SmtpError) -> String {
    error.source().map(ToString::to_string).unwrap_or_default()
}

pub(super) fn smtp_failure(stage: Stage, error: &SmtpError, secrets: &Secrets) -> ConnectorError {
    let Some(code) = error.status() else {
        let what = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            chain(error)
        };
        return ConnectorError::Failed(secrets.scrub(&format!("{}: {what}", stage.describe())));
    };
    let code = u16::from(code);
    let reply = secrets.scrub(&reply_text(error));
    let answered = format!("{}: the server answered {code} {reply}", stage.describe());
    match code {
        530 | 535 => ConnectorError::Unauthorized(format!("{code} {reply}")),
        400..=499 => {
            ConnectorError::Failed(format!("{answered} (temporary: trying later may work)"))
        }
        _ if stage.is_about_the_message() => ConnectorError::Invalid(answered),
        _ => ConnectorError::Failed(answered),
    }
}

/// The error and its causes on one line: lettre's own message is generic ("Connection
/// error"), the useful part ("Connection refused", "invalid peer certificate") is below.
fn chain(error: &SmtpError) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(cause) = current {
        let part = cause.to_string();
        // lettre's Display already ends with its direct source.
        if !parts.iter().any(|seen| seen.ends_with(&part)) {
            parts.push(part);
        }
        current = cause.source();
    }
    parts.join(": ")
}
