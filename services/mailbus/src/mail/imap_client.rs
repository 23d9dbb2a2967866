//! The small IMAP client a live import needs: TLS (implicit, or STARTTLS before anything else, RFC 9051
//! §6.2.1), LOGIN, LIST and LSUB, EXAMINE, UID FETCH. imap-next's client state machine frames the
//! responses (literals included) and imap-codec parses them; this file only moves bytes and waits for
//! each command's tagged status, under a time limit per read so that a server that stops answering ends
//! the run instead of hanging it.

use std::sync::Arc;
use std::time::Duration;

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, Data, Status, StatusKind};
use imap_next::client::{Client, Event, Options};
use imap_next::{Interrupt, Io, State};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the connection is secured. Plain IMAP is not offered: the password would cross the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Security {
    /// IMAPS (port 993): TLS from the first byte (RFC 8314).
    Implicit,
    /// Port 143, then STARTTLS before the login.
    Starttls,
}

/// What went wrong with the source server. `Lost` is the connection (reset, closed, silent past the
/// time limit): a run ends there and can be resumed.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connection to the source lost: {0}")]
    Lost(String),
    #[error("the source answered {command} with {kind}: {text}")]
    Refused { command: &'static str, kind: &'static str, text: String },
    #[error("TLS with the source failed: {0} (a private or self-signed certificate needs --imap-ca or --insecure)")]
    Tls(String),
    #[error("the source sent what is not IMAP: {0}")]
    Protocol(String),
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => write_flush(s, bytes).await,
            Stream::Tls(s) => write_flush(s.as_mut(), bytes).await,
        }
    }

    async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buffer).await,
            Stream::Tls(s) => s.read(buffer).await,
        }
    }
}

async fn write_flush<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

pub struct ImapClient {
    io: Stream,
    client: Client,
    next_tag: u32,
    read_timeout: Duration,
}

/// A command's untagged data, and the codes of its untagged and tagged OKs.
pub struct Reply {
    pub data: Vec<Data<'static>>,
    pub codes: Vec<Code<'static>>,
}

/// A handshake that failed on the certificate is the operator's to fix, not a lost connection.
fn tls_failed(error: std::io::Error) -> ImapError {
    match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(tls) => ImapError::Tls(tls.to_string()),
        None => lost(format!("TLS: {error}")),
    }
}

fn lost(error: impl std::fmt::Display) -> ImapError {
    ImapError::Lost(error.to_string())
}

impl ImapClient {
    /// Connects, secures the connection and reads the greeting. `host` names the server for TLS.
    pub async fn connect(
        host: &str,
        port: u16,
        security: Security,
        tls: Arc<rustls::ClientConfig>,
        read_timeout: Duration,
    ) -> Result<ImapClient, ImapError> {
        let tcp = tokio::time::timeout(read_timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| lost(format!("connecting to {host}:{port} timed out")))?
            .map_err(|e| lost(format!("connecting to {host}:{port}: {e}")))?;
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| ImapError::Protocol(format!("{host:?} is not a host name")))?;
        let connector = tokio_rustls::TlsConnector::from(tls);
        let mut client = match security {
            Security::Implicit => {
                let stream = connector.connect(name, tcp).await.map_err(tls_failed)?;
                ImapClient::new(Stream::Tls(Box::new(stream)), false, read_timeout)
            }
            Security::Starttls => {
                let mut plain = ImapClient::new(Stream::Plain(tcp), false, read_timeout);
                plain.greeting().await?;
                plain.run(CommandBody::StartTLS, "STARTTLS").await?;
                // Anything the server sent after its OK is dropped with the plain client: only what
                // comes over TLS is believed (RFC 9051 §11.1).
                let Stream::Plain(tcp) = plain.io else { unreachable!("built plain just above") };
                let stream = connector.connect(name, tcp).await.map_err(tls_failed)?;
                return Ok(ImapClient::new(Stream::Tls(Box::new(stream)), true, read_timeout));
            }
        };
        client.greeting().await?;
        Ok(client)
    }

    fn new(io: Stream, after_starttls: bool, read_timeout: Duration) -> ImapClient {
        let mut options = Options::default();
        // After STARTTLS no second greeting comes (RFC 9051 §6.2.1).
        options.discard_greeting = after_starttls;
        // Servers in the wild end lines with a bare LF now and then.
        options.crlf_relaxed = true;
        ImapClient { io, client: Client::new(options), next_tag: 0, read_timeout }
    }

    async fn greeting(&mut self) -> Result<(), ImapError> {
        loop {
            if let Event::GreetingReceived { greeting } = self.next_event().await? {
                use imap_codec::imap_types::response::GreetingKind;
                return match greeting.kind {
                    GreetingKind::Ok | GreetingKind::PreAuth => Ok(()),
                    GreetingKind::Bye => Err(ImapError::Refused {
                        command: "the connection",
                        kind: "BYE",
                        text: greeting.text.to_string(),
                    }),
                };
            }
        }
    }

    /// The next event, doing whatever reading and writing imap-next asks for first.
    async fn next_event(&mut self) -> Result<Event, ImapError> {
        let mut buffer = [0u8; 64 * 1024];
        loop {
            match self.client.next() {
                Ok(event) => return Ok(event),
                Err(Interrupt::Io(Io::Output(bytes))) => self.io.write_all(&bytes).await.map_err(lost)?,
                Err(Interrupt::Io(Io::NeedMoreInput)) => {
                    let read = tokio::time::timeout(self.read_timeout, self.io.read(&mut buffer))
                        .await
                        .map_err(|_| lost(format!("no answer within {:?}", self.read_timeout)))?
                        .map_err(lost)?;
                    if read == 0 {
                        return Err(lost("closed by the server"));
                    }
                    self.client.enqueue_input(&buffer[..read]);
                }
                Err(Interrupt::Error(error)) => return Err(ImapError::Protocol(error.to_string())),
            }
        }
    }

    /// Sends one command and collects what answers it, up to its tagged status, which must be OK.
    pub async fn run(&mut self, body: CommandBody<'static>, name: &'static str) -> Result<Reply, ImapError> {
        self.next_tag += 1;
        let tag = Tag::try_from(format!("m{}", self.next_tag)).map_err(|e| ImapError::Protocol(e.to_string()))?;
        self.client.enqueue_command(Command { tag: tag.clone(), body });
        let mut reply = Reply { data: Vec::new(), codes: Vec::new() };
        loop {
            match self.next_event().await? {
                Event::DataReceived { data } => reply.data.push(data),
                Event::StatusReceived { status: Status::Untagged(body) } => reply.codes.extend(body.code),
                Event::StatusReceived { status: Status::Tagged(tagged) } if tagged.tag == tag => {
                    return match tagged.body.kind {
                        StatusKind::Ok => {
                            reply.codes.extend(tagged.body.code);
                            Ok(reply)
                        }
                        StatusKind::No => Err(refused(name, "NO", tagged.body.text.to_string())),
                        StatusKind::Bad => Err(refused(name, "BAD", tagged.body.text.to_string())),
                    };
                }
                Event::StatusReceived { status: Status::Bye(bye) } => {
                    return Err(lost(format!("BYE {}", bye.text)));
                }
                Event::CommandRejected { status, .. } => {
                    let text = match status {
                        Status::Tagged(t) => t.body.text.to_string(),
                        other => format!("{other:?}"),
                    };
                    return Err(refused(name, "NO", text));
                }
                _ => {}
            }
        }
    }
}

fn refused(command: &'static str, kind: &'static str, text: String) -> ImapError {
    ImapError::Refused { command, kind, text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    /// A hostile or broken IMAPS server on loopback: greets, then answers each command line with what
    /// `script` gives for it (None: close the connection).
    async fn server(script: fn(&str) -> Option<&'static str>) -> (u16, Arc<rustls::ClientConfig>) {
        let pem = mailbus_tls::self_signed(&["localhost".to_owned()]).unwrap();
        let tls = mailbus_tls::ServerTls::from_pem(&pem.cert_pem, &pem.key_pem).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = tls.accept(tcp).await.unwrap();
            let (read, mut write) = tokio::io::split(stream);
            write.write_all(b"* OK ready\r\n").await.unwrap();
            let mut lines = tokio::io::BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let tag = line.split(' ').next().unwrap_or_default().to_owned();
                let Some(answer) = script(&line) else { return };
                let _ = write.write_all(answer.replace("TAG", &tag).as_bytes()).await;
            }
        });
        (port, mailbus_tls::client_config_trusting(&pem.cert_pem).unwrap())
    }

    async fn login(script: fn(&str) -> Option<&'static str>) -> Result<Reply, ImapError> {
        let (port, tls) = server(script).await;
        let mut client =
            ImapClient::connect("localhost", port, Security::Implicit, tls, Duration::from_secs(5)).await.unwrap();
        client.run(CommandBody::login("u", "p").unwrap(), "LOGIN").await
    }

    #[tokio::test]
    async fn a_login_answered_ok_succeeds_and_a_no_is_a_refusal_with_its_text() {
        assert!(login(|_| Some("TAG OK logged in\r\n")).await.is_ok());
        let error = login(|_| Some("TAG NO [AUTHENTICATIONFAILED] wrong\r\n")).await.err().unwrap();
        assert!(matches!(&error, ImapError::Refused { kind: "NO", text, .. } if text == "wrong"), "{error:?}");
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error_and_a_closed_connection_is_lost_never_a_panic() {
        let error = login(|_| Some("\u{0}\u{1} not imap at all\r\n")).await.err().unwrap();
        assert!(matches!(error, ImapError::Protocol(_)), "{error:?}");
        let error = login(|_| None).await.err().unwrap();
        assert!(matches!(error, ImapError::Lost(_)), "{error:?}");
        // A literal announced and never completed: the server goes silent inside it, and the read
        // limit ends the wait.
        let error = login(|_| Some("* 1 FETCH (BODY[] {999999}\r\nshort")).await.err().unwrap();
        assert!(matches!(error, ImapError::Lost(_)), "{error:?}");
    }
}
