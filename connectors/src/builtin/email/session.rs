//! One SMTP session: connect to a vetted address, secure the channel as the settings say,
//! sign in, and then either send one message or only quit (the connection test).
//!
//! The recipients are sent one `RCPT TO` at a time rather than through lettre's
//! all-or-nothing `send`, so a server refusing some of them (a mistyped mailbox) still
//! delivers to the rest, and the step's output says who was refused and why.

use std::time::Duration;

use aos_domain::connection::Credentials;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials as SmtpCredentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use serde_json::{Value, json};

use super::errors::{Secrets, Stage, reply_text, smtp_failure};
use super::message::Outgoing;
use super::settings::{Security, SmtpSettings};
use crate::{ConnectorContext, ConnectorError};

/// Until the TCP connection is up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole session, from connecting to the server's answer to the message.
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// The connection test is answered to someone waiting on the API.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// What the server made of a message.
pub(super) struct Delivery {
    pub(super) accepted: Vec<String>,
    pub(super) rejected: Vec<Value>,
    pub(super) response: String,
}

/// Sends `outgoing`; fails unless the server accepted it for at least one recipient.
pub(super) async fn send(
    ctx: &ConnectorContext<'_>,
    settings: &SmtpSettings,
    outgoing: &Outgoing,
) -> Result<Delivery, ConnectorError> {
    let secrets = Secrets::of(ctx.credentials);
    let exchange = async {
        let mut connection = open(ctx, settings, &secrets).await?;
        let delivery = deliver(&mut connection, outgoing, &secrets).await;
        match &delivery {
            // The message is the server's now; a failed QUIT changes nothing.
            Ok(_) => drop(connection.quit().await),
            Err(_) => connection.abort().await,
        }
        delivery
    };
    tokio::time::timeout(SESSION_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(timed_out(settings, SESSION_TIMEOUT)))
}

/// Connects, secures the channel, signs in and quits, sending nothing; a summary of what
/// worked.
pub(super) async fn check(
    ctx: &ConnectorContext<'_>,
    settings: &SmtpSettings,
) -> Result<String, ConnectorError> {
    let secrets = Secrets::of(ctx.credentials);
    let exchange = async {
        let mut connection = open(ctx, settings, &secrets).await?;
        connection
            .quit()
            .await
            .map_err(|error| smtp_failure(Stage::Quit, &error, &secrets))?;
        let signed_in = match ctx.credentials {
            Credentials::Basic { username, password } if !password.is_empty() => {
                format!(", signed in as {username}")
            }
            _ => String::new(),
        };
        Ok(format!(
            "connected to {}:{} ({}){signed_in}",
            settings.host,
            settings.port,
            match settings.security {
                Security::StartTls => "STARTTLS",
                Security::Tls => "TLS",
                Security::None => "unencrypted",
            }
        ))
    };
    tokio::time::timeout(CHECK_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(timed_out(settings, CHECK_TIMEOUT)))
}

fn timed_out(settings: &SmtpSettings, limit: Duration) -> ConnectorError {
    ConnectorError::Failed(format!(
        "the SMTP session with {}:{} took longer than {} s",
        settings.host,
        settings.port,
        limit.as_secs()
    ))
}

/// A signed-in session, ready for `MAIL FROM`.
async fn open(
    ctx: &ConnectorContext<'_>,
    settings: &SmtpSettings,
    secrets: &Secrets,
) -> Result<AsyncSmtpConnection, ConnectorError> {
    let addresses = ctx
        .http
        .vet_host(&settings.host, settings.port)
        .await
        .map_err(|error| {
            if error.is_transient() {
                ConnectorError::Failed(error.to_string())
            } else {
                ConnectorError::Invalid(error.to_string())
            }
        })?;
    // The certificate must name the configured host: the address is only where it lives.
    let tls = match settings.security {
        Security::None => None,
        Security::StartTls | Security::Tls => Some(
            TlsParameters::new(settings.host.clone())
                .map_err(|error| smtp_failure(Stage::Connect, &error, secrets))?,
        ),
    };
    let implicit_tls = tls.clone().filter(|_| settings.security == Security::Tls);
    let mut connection = AsyncSmtpConnection::connect_tokio1(
        addresses.as_slice(),
        Some(CONNECT_TIMEOUT),
        &settings.helo,
        implicit_tls,
        None,
    )
    .await
    .map_err(|error| smtp_failure(Stage::Connect, &error, secrets))?;
    if let (Security::StartTls, Some(tls)) = (settings.security, tls) {
        if !connection.can_starttls() {
            connection.abort().await;
            return Err(ConnectorError::Failed(format!(
                "{}:{} does not offer STARTTLS, so the password would travel unencrypted; use security \"tls\" if the port expects TLS from the start",
                settings.host, settings.port
            )));
        }
        connection
            .starttls(tls, &settings.helo)
            .await
            .map_err(|error| smtp_failure(Stage::StartTls, &error, secrets))?;
    }
    if let Err(error) = sign_in(&mut connection, ctx.credentials, secrets).await {
        connection.abort().await;
        return Err(error);
    }
    Ok(connection)
}

/// AUTH PLAIN, else LOGIN. An empty password means the server takes mail without
/// signing in (a local relay), so none is attempted.
async fn sign_in(
    connection: &mut AsyncSmtpConnection,
    credentials: &Credentials,
    secrets: &Secrets,
) -> Result<(), ConnectorError> {
    let Credentials::Basic { username, password } = credentials else {
        return Err(ConnectorError::Invalid(
            "the email connector signs in with `basic` credentials (user name and password)"
                .to_owned(),
        ));
    };
    if password.is_empty() {
        return Ok(());
    }
    let mechanisms = [Mechanism::Plain, Mechanism::Login];
    if connection
        .server_info()
        .get_auth_mechanism(&mechanisms)
        .is_none()
    {
        return Err(ConnectorError::Failed(
            "the server offers neither AUTH PLAIN nor AUTH LOGIN; leave the password empty if it takes mail without signing in".to_owned(),
        ));
    }
    connection
        .auth(
            &mechanisms,
            &SmtpCredentials::new(username.clone(), password.clone()),
        )
        .await
        .map(drop)
        .map_err(|error| smtp_failure(Stage::Auth, &error, secrets))
}

async fn deliver(
    connection: &mut AsyncSmtpConnection,
    outgoing: &Outgoing,
    secrets: &Secrets,
) -> Result<Delivery, ConnectorError> {
    let mut parameters = Vec::new();
    if outgoing.has_non_ascii_addresses() {
        if !connection
            .server_info()
            .supports_feature(Extension::SmtpUtfEight)
        {
            return Err(ConnectorError::Invalid(
                "an address is not ASCII and the server does not support SMTPUTF8".to_owned(),
            ));
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !outgoing.formatted.is_ascii() {
        if !connection
            .server_info()
            .supports_feature(Extension::EightBitMime)
        {
            return Err(ConnectorError::Invalid(
                "the message is not ASCII and the server does not support 8BITMIME".to_owned(),
            ));
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    connection
        .command(Mail::new(outgoing.envelope.from().cloned(), parameters))
        .await
        .map_err(|error| smtp_failure(Stage::MailFrom, &error, secrets))?;

    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    let mut refusals: Vec<SmtpError> = Vec::new();
    for recipient in outgoing.envelope.to() {
        match connection
            .command(Rcpt::new(recipient.clone(), Vec::new()))
            .await
        {
            Ok(_) => accepted.push(recipient.to_string()),
            Err(error) if error.status().is_some() => {
                rejected.push(json!({
                    "address": recipient.to_string(),
                    "code": error.status().map(u16::from),
                    "message": secrets.scrub(&reply_text(&error)),
                }));
                refusals.push(error);
            }
            Err(error) => return Err(smtp_failure(Stage::RcptTo, &error, secrets)),
        }
    }
    if accepted.is_empty() {
        // Transient if any refusal was (4xx): trying later may get through.
        let worst = refusals
            .iter()
            .find(|error| error.is_transient())
            .or(refusals.first());
        return Err(match worst {
            Some(error) => smtp_failure(Stage::RcptTo, error, secrets),
            None => ConnectorError::Invalid("the message has no recipients".to_owned()),
        });
    }

    connection
        .command(Data)
        .await
        .map_err(|error| smtp_failure(Stage::Data, &error, secrets))?;
    let response = connection
        .message(&outgoing.formatted)
        .await
        .map_err(|error| smtp_failure(Stage::Data, &error, secrets))?;
    let response = format!(
        "{} {}",
        u16::from(response.code()),
        response.message().collect::<Vec<_>>().join(" ")
    );
    Ok(Delivery {
        accepted,
        rejected,
        response: secrets.scrub(&response),
    })
}
