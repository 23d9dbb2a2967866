//! One SMTP connection: read, decode, let the session decide, carry out its action, write — under the
//! RFC 5321 §4.5.3.2 timeouts, until QUIT, EOF, a timeout or shutdown.

use std::sync::Arc;
use std::time::Duration;

use mailbus_acceptor::wire::{ReadError, Wire};
use mailbus_smtp::command::CommandDecoder;
use mailbus_smtp::data::{DataProgress, DataReader};
use mailbus_smtp::reply::{Enhanced, Reply};
use mailbus_smtp::session::{Action, DataOutcome, Session, SessionConfig};
use tokio::io::{AsyncRead, AsyncWrite};
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
    Read(ReadError),
    Io(std::io::Error),
}

pub async fn handle<IO, D, S>(io: IO, client: ClientInfo, ctx: Arc<Context<D, S>>, shutdown: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin,
    D: Directory,
    S: Spool,
{
    let mut conn = Connection { wire: Wire::new(io), client, ctx };
    let end = conn.run(&shutdown).await;
    match end {
        End::Io(error) | End::Read(ReadError::Io(error)) => {
            tracing::info!(peer = %conn.client.peer, %error, "connection failed")
        }
        other => tracing::debug!(peer = %conn.client.peer, end = ?other, "connection closed"),
    }
}

struct Connection<IO, D, S> {
    wire: Wire<IO>,
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
        self.wire.output.extend(session.greeting().to_bytes());
        loop {
            // Answer every complete command already received (PIPELINING, RFC 2920), then flush once.
            while let Some(command) = self.wire.next_item(|input| decoder.decode(input)) {
                let action = session.handle(command);
                if let Some(end) = self.act(&mut session, action).await {
                    return end;
                }
            }
            if let Err(error) = self.wire.flush().await {
                return End::Io(error);
            }
            match self.wire.read_more(COMMAND_TIMEOUT, shutdown).await {
                Ok(()) => {}
                Err(ReadError::Timeout) => {
                    self.reply(Reply::new(421, Enhanced(4, 4, 2), "Timeout exceeded, closing connection")).await;
                    return End::Read(ReadError::Timeout);
                }
                Err(ReadError::Shutdown) => {
                    self.reply(Reply::new(421, Enhanced(4, 3, 2), "Service shutting down")).await;
                    return End::Read(ReadError::Shutdown);
                }
                Err(other) => return End::Read(other),
            }
        }
    }

    /// Carries out one action; `Some` ends the connection.
    async fn act(&mut self, session: &mut Session, action: Action) -> Option<End> {
        match action {
            Action::Reply(reply) => self.wire.output.extend(reply.to_bytes()),
            Action::CheckRecipient(check) => {
                let verdict = self.ctx.directory.verdict(&check.recipient.address).await;
                self.wire.output.extend(session.recipient_checked(check, verdict).to_bytes());
            }
            Action::ReceiveData(go_ahead) => {
                self.wire.output.extend(go_ahead.to_bytes());
                if let Err(error) = self.wire.flush().await {
                    return Some(End::Io(error));
                }
                let span = tracing::info_span!("smtp.data", otel.kind = "server", network.peer.address = %self.client.peer.ip());
                let reply = match self.receive_message(session).instrument(span).await {
                    Ok(reply) => reply,
                    Err(end) => return Some(end),
                };
                self.wire.output.extend(reply.to_bytes());
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
            let (consumed, progress) = reader.feed(&self.wire.input);
            self.wire.consume(consumed);
            if progress != DataProgress::Incomplete {
                break progress;
            }
            // Shutdown waits for a body in progress; the block timeout bounds that wait.
            self.wire.read_more(DATA_BLOCK_TIMEOUT, &CancellationToken::new()).await.map_err(End::Read)?;
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

    async fn reply(&mut self, reply: Reply) {
        self.wire.last_words(&reply.to_bytes()).await;
    }
}
