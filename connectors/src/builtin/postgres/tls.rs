//! Securing a fresh TCP connection to Postgres as `sslMode` says: the `SSLRequest`
//! exchange, then a rustls handshake.
//!
//! Done here rather than by sqlx because sqlx verifies the certificate against the host it
//! connects to, and the connector connects to a vetted address: here the certificate is
//! checked against the configured host name while the bytes go to that address.
//!
//! - `verify-full`: the platform's trust store (as the HTTP client uses) and the host name;
//! - `require` and `prefer`: encrypted but not authenticated, as in libpq: any certificate
//!   is taken, though the handshake's signatures are still checked, so the channel is
//!   private against anyone who cannot intercept it actively;
//! - `prefer` and `disable` may end up in the clear: `prefer` when the server declines.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::settings::SslMode;
use crate::ConnectorError;

/// The protocol's `SSLRequest`: length 8, then the code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F];

/// The connection to the server, ready for the startup message.
pub(super) enum Channel {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub(super) async fn secure(
    mut tcp: TcpStream,
    host: &str,
    mode: SslMode,
) -> Result<Channel, ConnectorError> {
    if mode == SslMode::Disable {
        return Ok(Channel::Plain(tcp));
    }
    let lost = |error: std::io::Error| {
        ConnectorError::Failed(format!(
            "the database server hung up while agreeing on TLS: {error}"
        ))
    };
    tcp.write_all(&SSL_REQUEST).await.map_err(lost)?;
    // One byte and no more: anything the server sent after it, before the handshake,
    // would be unauthenticated bytes read as if they came through TLS (CVE-2021-23222).
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(lost)?;
    match (answer[0], mode) {
        (b'S', _) => {}
        (b'N', SslMode::Prefer) => return Ok(Channel::Plain(tcp)),
        (b'N', _) => {
            return Err(ConnectorError::Failed(
                "the database server does not support TLS, which sslMode requires".to_owned(),
            ));
        }
        _ => {
            return Err(ConnectorError::Failed(
                "the server did not answer the TLS request as Postgres does".to_owned(),
            ));
        }
    }
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| ConnectorError::Invalid(format!("{host} is not a valid TLS server name")))?;
    let config = client_config(mode)
        .map_err(|error| ConnectorError::Failed(format!("could not set up TLS: {error}")))?;
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|error| {
            ConnectorError::Failed(format!("TLS with the database server failed: {error}"))
        })?;
    Ok(Channel::Tls(Box::new(stream)))
}

fn client_config(mode: SslMode) -> Result<ClientConfig, rustls::Error> {
    // The process's provider (the binary installs aws-lc-rs at start); the same one
    // otherwise, as in tests.
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    Ok(match mode {
        SslMode::VerifyFull => builder.with_platform_verifier()?.with_no_client_auth(),
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly { provider }))
            .with_no_client_auth(),
    })
}

/// Takes any certificate (libpq's `require`), but checks that the server holds its key.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
