//! A small SMTP server on loopback that speaks enough real SMTP (RFC 5321, AUTH PLAIN and
//! LOGIN from RFC 4954) for the connector to send through it, and records each session:
//! what the client said and what the message was.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the sink behaves.
#[derive(Debug, Clone)]
pub(super) struct SinkConfig {
    pub(super) username: String,
    pub(super) password: String,
    /// The mechanisms advertised after `250-AUTH`.
    pub(super) mechanisms: &'static str,
    /// Advertise STARTTLS (which the sink cannot actually do).
    pub(super) offers_starttls: bool,
    /// Recipients refused at `RCPT TO`, with the whole reply line.
    pub(super) refused: Vec<(String, &'static str)>,
    /// A reply to `MAIL FROM` other than 250.
    pub(super) mail_from_reply: Option<&'static str>,
    /// Quote the client's AUTH line back in the 535 reply, as a careless server might.
    pub(super) echoes_auth: bool,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            username: "mailer".to_owned(),
            password: "smtp-pass-5a7e".to_owned(),
            mechanisms: "PLAIN LOGIN",
            offers_starttls: false,
            refused: Vec::new(),
            mail_from_reply: None,
            echoes_auth: false,
        }
    }
}

/// What one client did in one connection.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Session {
    pub(super) ehlo: Vec<String>,
    /// The mechanism, user name and password of a successful sign-in.
    pub(super) signed_in: Option<(String, String, String)>,
    pub(super) auth_attempts: usize,
    pub(super) mail_from: Option<String>,
    /// Accepted recipients only.
    pub(super) rcpt_to: Vec<String>,
    /// The message after DATA, dot-unstuffed, without the final `.` line.
    pub(super) data: Option<String>,
    pub(super) quit: bool,
}

pub(super) struct Sink {
    pub(super) addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Session>>>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub(super) async fn start(config: SinkConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the sink binds");
        let addr = listener.local_addr().expect("the sink has an address");
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&sessions);
        let config = Arc::new(config);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let index = {
                    let mut all = shared.lock().expect("the lock is sound");
                    all.push(Session::default());
                    all.len() - 1
                };
                let shared = Arc::clone(&shared);
                let config = Arc::clone(&config);
                tokio::spawn(async move {
                    // A client hanging up mid-session is a session like any other here.
                    let _ = serve(stream, &config, &shared, index).await;
                });
            }
        });
        Self {
            addr,
            sessions,
            task,
        }
    }

    pub(super) fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().expect("the lock is sound").clone()
    }
}

async fn serve(
    stream: TcpStream,
    config: &SinkConfig,
    sessions: &Mutex<Vec<Session>>,
    index: usize,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    // Recorded before each reply, so a client that got the reply finds it recorded.
    let record = Recorder { sessions, index };
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    loop {
        let Some(line) = read_line(&mut lines).await? else {
            return Ok(());
        };
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO ") {
            let name = line[5..].to_owned();
            record.change(|session| session.ehlo.push(name));
            let mut reply = String::from("250-sink.test greets you\r\n");
            if config.offers_starttls {
                reply.push_str("250-STARTTLS\r\n");
            }
            reply.push_str(&format!("250-AUTH {}\r\n", config.mechanisms));
            reply.push_str("250 8BITMIME\r\n");
            reply
        } else if upper.starts_with("AUTH PLAIN") {
            record.change(|session| session.auth_attempts += 1);
            let encoded = line[10..].trim().to_owned();
            let decoded = decode(&encoded);
            let mut parts = decoded.split('\0').skip(1);
            let user = parts.next().unwrap_or_default().to_owned();
            let pass = parts.next().unwrap_or_default().to_owned();
            sign_in(config, &record, "PLAIN", user, pass, &line)
        } else if upper.starts_with("AUTH LOGIN") {
            record.change(|session| session.auth_attempts += 1);
            write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let Some(user) = read_line(&mut lines).await? else {
                return Ok(());
            };
            write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let Some(pass) = read_line(&mut lines).await? else {
                return Ok(());
            };
            sign_in(
                config,
                &record,
                "LOGIN",
                decode(&user),
                decode(&pass),
                &pass,
            )
        } else if upper.starts_with("MAIL FROM:") {
            if let Some(reply) = config.mail_from_reply {
                format!("{reply}\r\n")
            } else {
                let from = angle_address(&line);
                record.change(|session| session.mail_from = Some(from));
                "250 2.1.0 sender ok\r\n".to_owned()
            }
        } else if upper.starts_with("RCPT TO:") {
            let to = angle_address(&line);
            match config.refused.iter().find(|(address, _)| *address == to) {
                Some((_, reply)) => format!("{reply}\r\n"),
                None => {
                    record.change(|session| session.rcpt_to.push(to));
                    "250 2.1.5 recipient ok\r\n".to_owned()
                }
            }
        } else if upper == "DATA" {
            write
                .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut message = String::new();
            loop {
                let Some(line) = read_line(&mut lines).await? else {
                    return Ok(());
                };
                if line == "." {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                message.push_str(unstuffed);
                message.push_str("\r\n");
            }
            record.change(|session| session.data = Some(message));
            "250 2.0.0 Ok: queued as SINK42\r\n".to_owned()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 ok\r\n".to_owned()
        } else if upper == "STARTTLS" {
            "454 4.7.0 TLS not available\r\n".to_owned()
        } else if upper == "QUIT" {
            record.change(|session| session.quit = true);
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 command not recognized\r\n".to_owned()
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// Changes one session's record.
struct Recorder<'a> {
    sessions: &'a Mutex<Vec<Session>>,
    index: usize,
}

impl Recorder<'_> {
    fn change(&self, change: impl FnOnce(&mut Session)) {
        let mut all = self.sessions.lock().expect("the lock is sound");
        change(&mut all[self.index]);
    }
}

fn sign_in(
    config: &SinkConfig,
    record: &Recorder<'_>,
    mechanism: &str,
    user: String,
    pass: String,
    client_said: &str,
) -> String {
    if user == config.username && pass == config.password {
        let signed_in = (mechanism.to_owned(), user, pass);
        record.change(|session| session.signed_in = Some(signed_in));
        "235 2.7.0 authentication successful\r\n".to_owned()
    } else if config.echoes_auth {
        format!("535 5.7.8 bad credentials: {client_said}\r\n")
    } else {
        "535 5.7.8 authentication credentials invalid\r\n".to_owned()
    }
}

/// One line without its CRLF; `None` at end of stream.
async fn read_line(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if lines.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn decode(base64: &str) -> String {
    String::from_utf8(STANDARD.decode(base64.trim()).unwrap_or_default()).unwrap_or_default()
}

/// `user@example.com` from `MAIL FROM:<user@example.com> BODY=8BITMIME`.
fn angle_address(line: &str) -> String {
    let start = line.find('<').map_or(0, |at| at + 1);
    let end = line.find('>').unwrap_or(line.len());
    line[start..end].to_owned()
}
