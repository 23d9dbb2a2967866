//! One SMTP connection: read, decode, let the session decide, carry out its action, write — under the
//! RFC 5321 §4.5.3.2 timeouts, until QUIT, EOF, a timeout or shutdown.

use std::sync::Arc;
use std::time::Duration;

use mailbus_smtp::Decode;
use mailbus_smtp::command::CommandDecoder;
use mailbus_smtp::data::{DataProgress, DataReader};
use mailbus_smtp::reply::{Enhanced, Reply};
use mailbus_smtp::session::{Action, DataOutcome, Session, SessionConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::ports::{ClientInfo, Directory, Spool};

/// RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// RFC 5321 §4.5.3.2.5: at least 3 minutes for each block of DATA.
pub const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(180);

pub struct Context<D, S> {
    pub directory: D,
    pub spool: S,
    pub session: SessionConfig,
    pub metrics: Metrics,
}

/// Why a connection ended, for the log.
#[derive(Debug)]
enum End {
    Quit,
    Eof,
    Timeout,
    Shutdown,
    Io(std::io::Error),
}

pub async fn handle<IO, D, S>(io: IO, client: ClientInfo, ctx: Arc<Context<D, S>>, shutdown: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Directory,
    S: Spool,
{
    let mut conn = Connection { io, input: Vec::with_capacity(4096), output: Vec::new(), client, ctx };
    let end = conn.run(&shutdown).await;
    match end {
        End::Io(error) => tracing::info!(peer = %conn.client.peer, %error, "connection failed"),
        other => tracing::debug!(peer = %conn.client.peer, end = ?other, "connection closed"),
    }
}

struct Connection<IO, D, S> {
    io: IO,
    input: Vec<u8>,
    output: Vec<u8>,
    client: ClientInfo,
    ctx: Arc<Context<D, S>>,
}

impl<IO, D, S> Connection<IO, D, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Directory,
    S: Spool,
{
    async fn run(&mut self, shutdown: &CancellationToken) -> End {
        let mut session = Session::new(self.ctx.session.clone());
        let mut decoder = CommandDecoder::default();
        self.output.extend(session.greeting().to_bytes());
        loop {
            // Answer every complete command already received (PIPELINING, RFC 2920), then flush once.
            loop {
                let command = match decoder.decode(&self.input) {
                    Decode::Incomplete => break,
                    Decode::Skip { consumed } => {
                        self.input.drain(..consumed);
                        continue;
                    }
                    Decode::Item { item, consumed } => {
                        self.input.drain(..consumed);
                        Ok(item)
                    }
                    Decode::Invalid { error, consumed } => {
                        self.input.drain(..consumed);
                        Err(error)
                    }
                };
                let action = session.handle(command);
                if let Some(end) = self.act(&mut session, action).await {
                    return end;
                }
            }
            if let Err(error) = self.flush().await {
                return End::Io(error);
            }
            match self.read_more(COMMAND_TIMEOUT, shutdown).await {
                Ok(()) => {}
                Err(End::Timeout) => {
                    self.reply(Reply::new(421, Enhanced(4, 4, 2), "Timeout exceeded, closing connection")).await;
                    return End::Timeout;
                }
                Err(End::Shutdown) => {
                    self.reply(Reply::new(421, Enhanced(4, 3, 2), "Service shutting down")).await;
                    return End::Shutdown;
                }
                Err(other) => return other,
            }
        }
    }

    /// Carries out one action; `Some` ends the connection.
    async fn act(&mut self, session: &mut Session, action: Action) -> Option<End> {
        match action {
            Action::Reply(reply) => self.output.extend(reply.to_bytes()),
            Action::CheckRecipient(check) => {
                let verdict = self.ctx.directory.verdict(&check.recipient.address).await;
                self.output.extend(session.recipient_checked(check, verdict).to_bytes());
            }
            Action::ReceiveData(go_ahead) => {
                self.output.extend(go_ahead.to_bytes());
                if let Err(error) = self.flush().await {
                    return Some(End::Io(error));
                }
                let span = tracing::info_span!("smtp.data", otel.kind = "server", network.peer.address = %self.client.peer.ip());
                let reply = match self.receive_message(session).instrument(span).await {
                    Ok(reply) => reply,
                    Err(end) => return Some(end),
                };
                self.output.extend(reply.to_bytes());
            }
            Action::Close(reply) => {
                self.reply(reply).await;
                return Some(End::Quit);
            }
        }
        None
    }

    /// Reads the body and makes it durable; the reply is 250 only if that succeeded.
    async fn receive_message(&mut self, session: &mut Session) -> Result<Reply, End> {
        let mut reader = DataReader::new(session.max_message_size());
        let progress = loop {
            let (consumed, progress) = reader.feed(&self.input);
            self.input.drain(..consumed);
            if progress != DataProgress::Incomplete {
                break progress;
            }
            // Shutdown waits for a body in progress; the block timeout bounds that wait.
            self.read_more(DATA_BLOCK_TIMEOUT, &CancellationToken::new()).await?;
        };
        match session.data_received(progress) {
            DataOutcome::Reply(reply) => {
                self.ctx.metrics.message(reply.code);
                Ok(reply)
            }
            DataOutcome::Enqueue(message) => {
                let reply = match self.ctx.spool.enqueue(message, &self.client, session.hostname()).await {
                    Ok(queue_id) => {
                        tracing::info!(%queue_id, peer = %self.client.peer, "message accepted");
                        session.queued(&queue_id)
                    }
                    Err(error) => {
                        tracing::warn!(%error, peer = %self.client.peer, "message not queued");
                        session.not_queued()
                    }
                };
                self.ctx.metrics.message(reply.code);
                Ok(reply)
            }
        }
    }

    async fn read_more(&mut self, timeout: Duration, shutdown: &CancellationToken) -> Result<(), End> {
        let mut chunk = [0u8; 8192];
        let read = tokio::select! {
            read = tokio::time::timeout(timeout, self.io.read(&mut chunk)) => read,
            _ = shutdown.cancelled() => return Err(End::Shutdown),
        };
        match read {
            Err(_) => Err(End::Timeout),
            Ok(Err(error)) => Err(End::Io(error)),
            Ok(Ok(0)) => Err(End::Eof),
            Ok(Ok(n)) => {
                self.input.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.output.is_empty() {
            self.io.write_all(&self.output).await?;
            self.output.clear();
        }
        self.io.flush().await
    }

    /// Sends a last reply; the connection is closing, so a write error changes nothing.
    async fn reply(&mut self, reply: Reply) {
        self.output.extend(reply.to_bytes());
        let _ = self.flush().await;
    }
}
