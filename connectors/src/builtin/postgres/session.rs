//! One connection for one call: vetted address, TCP, TLS as the settings say, then sqlx
//! signs in over the [`Relay`].
//!
//! sqlx is told nothing it could use to reach anything else: it connects to the relay's
//! socket, with TLS off (the channel behind the relay is already what `sslMode` asked
//! for), and every option that sqlx would otherwise take from the `PG*` environment of
//! this process (user, password, database) is set from the connection.

use std::time::Duration;

use aos_domain::connection::Credentials;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection};
use tokio::net::TcpStream;

use super::errors::{Secrets, connect_failure};
use super::relay::{self, Relay};
use super::settings::PgSettings;
use super::tls::{self, Channel};
use crate::{ConnectorContext, ConnectorError};

/// From the first TCP packet to a signed-in session.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Saying goodbye is a courtesy; the socket closes either way.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the server's `pg_stat_activity` shows.
const APPLICATION_NAME: &str = "AutomationOS";

pub(super) struct Session {
    pub(super) connection: PgConnection,
    /// Whether the channel to the server is TLS.
    pub(super) encrypted: bool,
    _relay: Relay,
}

impl Session {
    pub(super) async fn close(self) {
        let Session {
            connection, _relay, ..
        } = self;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close()).await;
    }
}

/// A signed-in connection whose statements time out after `statement_timeout`.
pub(super) async fn open(
    ctx: &ConnectorContext<'_>,
    settings: &PgSettings,
    statement_timeout: Duration,
    secrets: &Secrets,
) -> Result<Session, ConnectorError> {
    let Credentials::Basic { username, password } = ctx.credentials else {
        return Err(ConnectorError::Invalid(
            "the postgres connector signs in with `basic` credentials (database user and password)"
                .to_owned(),
        ));
    };
    let target = format!("{}:{}", settings.host, settings.port);
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
    let connecting = async {
        let tcp = connect_first(&addresses).await.map_err(|error| {
            ConnectorError::Failed(format!(
                "could not connect to the database at {target}: {error}"
            ))
        })?;
        let channel = tls::secure(tcp, &settings.host, settings.ssl_mode).await?;
        let encrypted = matches!(channel, Channel::Tls(_));
        let relay = match channel {
            Channel::Plain(stream) => Relay::start(stream).await,
            Channel::Tls(stream) => Relay::start(stream).await,
        }
        .map_err(|error| {
            ConnectorError::Failed(format!(
                "could not hand the connection to the driver: {error}"
            ))
        })?;
        let options = PgConnectOptions::new_without_pgpass()
            .socket(relay.directory())
            .port(relay::SOCKET_PORT)
            .ssl_mode(PgSslMode::Disable)
            .username(username)
            .password(password)
            .database(&settings.database)
            .application_name(APPLICATION_NAME)
            .options([("statement_timeout", statement_timeout.as_millis())])
            // Statements may hold what an author pasted into them; they are not logged.
            .disable_statement_logging();
        let connection = options
            .connect()
            .await
            .map_err(|error| connect_failure(&error, &target, secrets))?;
        Ok(Session {
            connection,
            encrypted,
            _relay: relay,
        })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectorError::Failed(format!(
                "connecting to the database at {target} took longer than {} s",
                CONNECT_TIMEOUT.as_secs()
            )))
        })
}

/// The first of the vetted addresses that answers.
async fn connect_first(addresses: &[std::net::SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // The protocol trades small messages; waiting to batch them only adds latency.
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
}
