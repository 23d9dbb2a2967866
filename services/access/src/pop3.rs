//! One POP3 connection: read, decode, let the session decide, carry out its action, write.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mailbus_acceptor::wire::{ReadError, Wire};
use mailbus_pop3::command::CommandDecoder;
use mailbus_pop3::response::Response;
use mailbus_pop3::session::{Action, Session};
use mailbus_pop3::stuffing::{DotStuffer, top};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backend::{Account, Backend};

/// RFC 1939 §3: an autologout timer of at least 10 minutes.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Context<B> {
    pub backend: B,
    pub hostname: String,
}

#[derive(Debug)]
enum End {
    Closed,
    Read(ReadError),
    Io(std::io::Error),
}

pub async fn handle<IO, B>(io: IO, peer: std::net::SocketAddr, ctx: Arc<Context<B>>, shutdown: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    let mut conn = Connection { wire: Wire::new(io), ctx, account: None };
    let span = tracing::info_span!("pop3.session", network.peer.address = %peer.ip(), account = tracing::field::Empty);
    let end = conn.run(&shutdown).instrument(span).await;
    match end {
        End::Io(error) | End::Read(ReadError::Io(error)) => tracing::info!(%peer, %error, "pop3 connection failed"),
        other => tracing::debug!(%peer, end = ?other, "pop3 connection closed"),
    }
}

struct Connection<IO, B> {
    wire: Wire<IO>,
    ctx: Arc<Context<B>>,
    /// Set once PASS succeeded.
    account: Option<Account>,
}

impl<IO, B> Connection<IO, B>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    async fn run(&mut self, shutdown: &CancellationToken) -> End {
        let mut session = Session::new(&self.ctx.hostname);
        let mut decoder = CommandDecoder::default();
        self.wire.output.extend(session.greeting().to_bytes());
        loop {
            while let Some(command) = self.wire.next_item(|input| decoder.decode(input)) {
                let action = session.handle(command);
                if let Some(end) = self.act(&mut session, action).await {
                    return end;
                }
                if let Err(error) = self.wire.flush_if_large().await {
                    return End::Io(error);
                }
            }
            if let Err(error) = self.wire.flush().await {
                return End::Io(error);
            }
            match self.wire.read_more(IDLE_TIMEOUT, shutdown).await {
                Ok(()) => {}
                // RFC 1939 §3: an autologout does not enter UPDATE, so nothing is deleted.
                Err(ReadError::Timeout) => {
                    self.wire.last_words(&Response::err("autologout: idle too long").to_bytes()).await;
                    return End::Read(ReadError::Timeout);
                }
                Err(ReadError::Shutdown) => {
                    self.wire.last_words(&Response::err("[SYS/TEMP] server shutting down").to_bytes()).await;
                    return End::Read(ReadError::Shutdown);
                }
                Err(other) => return End::Read(other),
            }
        }
    }

    async fn act(&mut self, session: &mut Session, action: Action) -> Option<End> {
        match action {
            Action::Reply(response) => self.wire.output.extend(response.to_bytes()),
            Action::Authenticate { user, password } => {
                let response = match self.ctx.backend.authenticate(&user, password.expose()).await {
                    Ok(Some(account)) => match self.ctx.backend.maildrop(&account).await {
                        Ok(maildrop) => {
                            tracing::Span::current().record("account", account.address.as_str());
                            self.account = Some(account);
                            session.authenticated(Some(maildrop))
                        }
                        Err(error) => {
                            tracing::warn!(%error, "maildrop unavailable");
                            session.auth_unavailable()
                        }
                    },
                    Ok(None) => session.authenticated(None),
                    Err(error) => {
                        tracing::warn!(%error, "authentication unavailable");
                        session.auth_unavailable()
                    }
                };
                self.wire.output.extend(response.to_bytes());
            }
            Action::Retrieve { uid, size, top_lines } => {
                if let Err(end) = self.retrieve(uid, size, top_lines).await {
                    return Some(end);
                }
            }
            Action::Update { deleted_uids } => {
                let ok = match (&self.account, deleted_uids.is_empty()) {
                    (_, true) => true,
                    (Some(account), false) => match self.ctx.backend.expunge(account, deleted_uids).await {
                        Ok(()) => true,
                        Err(error) => {
                            tracing::warn!(%error, "expunge at QUIT failed");
                            false
                        }
                    },
                    (None, false) => false,
                };
                self.wire.last_words(&session.updated(ok).to_bytes()).await;
                return Some(End::Closed);
            }
            Action::Close(response) => {
                self.wire.last_words(&response.to_bytes()).await;
                return Some(End::Closed);
            }
        }
        None
    }

    /// RETR and TOP. Once "+OK" is out, a failure can only be reported by closing the connection.
    async fn retrieve(&mut self, uid: u32, size: u64, top_lines: Option<u32>) -> Result<(), End> {
        let Some(account) = &self.account else {
            self.wire.output.extend(Response::err("not logged in").to_bytes());
            return Ok(());
        };
        let mut chunks = match self.ctx.backend.fetch(account, uid).await {
            Ok(chunks) => chunks,
            Err(error) => {
                tracing::warn!(%error, uid, "message unavailable");
                self.wire.output.extend(Response::err("[SYS/TEMP] message unavailable, try again later").to_bytes());
                return Ok(());
            }
        };
        let mut stuffer = DotStuffer::new();
        match top_lines {
            None => {
                self.wire.output.extend(Response::ok(format!("{size} octets")).to_bytes());
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk.map_err(|e| End::Io(std::io::Error::other(e)))?;
                    stuffer.push(&chunk, &mut self.wire.output);
                    // Keep memory flat for big messages: write as we go.
                    self.wire.flush_if_large().await.map_err(End::Io)?;
                }
            }
            Some(lines) => {
                let mut message = Vec::with_capacity(size as usize);
                while let Some(chunk) = chunks.next().await {
                    message.extend(chunk.map_err(|e| End::Io(std::io::Error::other(e)))?);
                }
                self.wire.output.extend(Response::ok("top of message follows").to_bytes());
                stuffer.push(top(&message, lines), &mut self.wire.output);
            }
        }
        stuffer.finish(&mut self.wire.output);
        Ok(())
    }
}
