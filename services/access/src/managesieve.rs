//! One ManageSieve connection (RFC 5804, port 4190): read, decode, let the `mailbus-managesieve` session
//! decide, carry out its action, write. This file moves bytes, upgrades to TLS when told to, checks
//! credentials against the directory (under the shared failed-login throttle) and takes each request on
//! scripts to the mailbox role's `Sieve` service, whose gRPC status it turns into the session's `Failure`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailbus_acceptor::wire::{ReadError, SessionClock, StartTlsError, Wire};
use mailbus_address::AccountId;
use mailbus_grpc::TracedChannel;
use mailbus_jetstream::{LoginThrottle, Verdict};
use mailbus_managesieve::command::{CommandDecoder, MAX_LITERAL_BEFORE_LOGIN, Secret};
use mailbus_managesieve::response::Response;
use mailbus_managesieve::session::{
    Action, Answer, AuthOutcome, Failure, Request, ScriptEntry, Session, SessionConfig,
};
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient, sieve_client::SieveClient};
use mailbus_sasl::PlaintextAuth;
use mailbus_tls::{MaybeTls, ServerTls};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::SessionMetrics;

/// The largest literal read after login: a script, or a PUTSCRIPT the mailbox role would refuse anyway
/// with QUOTA/MAXSIZE. Dovecot's `sieve_max_script_size` is 1 MiB; the mailbox role's own limit decides
/// what is stored, this only bounds what one command may make us hold.
pub const MAX_SCRIPT_LITERAL: usize = 1024 * 1024;

pub struct Context {
    pub directory: DirectoryClient<TracedChannel>,
    pub sieve: SieveClient<TracedChannel>,
    pub tls: ServerTls,
    /// STARTTLS or STLS, and implicit TLS where the listener has it; never past the login deadline.
    pub tls_handshake_timeout: Duration,
    pub hostname: String,
    pub plaintext_auth: PlaintextAuth,
    pub max_auth_failures: usize,
    /// The redirects one script run may make, for MAXREDIRECTS.
    pub max_redirects: usize,
    /// Until a command line is complete, and between commands.
    pub idle_timeout: Duration,
    /// From connecting to a successful login, STARTTLS included.
    pub login_timeout: Duration,
    pub throttle: LoginThrottle,
    pub metrics: SessionMetrics,
}

#[derive(Debug)]
enum End {
    Closed,
    Read(ReadError),
    Io(std::io::Error),
    TlsHandshake(std::io::Error),
}

pub async fn handle<IO>(io: IO, peer: SocketAddr, ctx: Arc<Context>, shutdown: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::info_span!(
        "managesieve.session",
        network.peer.address = %peer.ip(),
        account = tracing::field::Empty
    );
    let _active = ctx.metrics.open();
    let session_span = span.clone();
    async {
        let config = SessionConfig {
            hostname: ctx.hostname.clone(),
            starttls_available: true,
            plaintext_allowed: ctx.plaintext_auth.allows(peer.ip()),
            max_auth_failures: ctx.max_auth_failures,
            max_redirects: ctx.max_redirects,
        };
        let login_deadline = tokio::time::Instant::now() + ctx.login_timeout;
        let mut conn = Connection {
            peer,
            wire: Wire::new(MaybeTls::Plain(io)),
            decoder: CommandDecoder::new(MAX_LITERAL_BEFORE_LOGIN),
            ctx,
            account: None,
            login_deadline,
            session_span,
        };
        match conn.run(Session::new(config, false), &shutdown).await {
            End::Io(error) | End::Read(ReadError::Io(error)) => {
                tracing::info!(%peer, %error, "managesieve connection failed")
            }
            End::TlsHandshake(error) => tracing::info!(%peer, %error, "STARTTLS handshake failed"),
            other => tracing::debug!(%peer, end = ?other, "managesieve connection closed"),
        }
    }
    .instrument(span)
    .await
}

/// The logged-in account.
struct Account {
    id: AccountId,
    address: String,
}

struct Connection<IO> {
    peer: SocketAddr,
    wire: Wire<MaybeTls<IO>>,
    decoder: CommandDecoder,
    ctx: Arc<Context>,
    account: Option<Account>,
    login_deadline: tokio::time::Instant,
    session_span: tracing::Span,
}

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self, mut session: Session, shutdown: &CancellationToken) -> End {
        self.wire.output.extend(session.greeting().to_bytes());
        let mut clock = SessionClock::new(self.login_deadline, self.ctx.idle_timeout);
        loop {
            while let Some(line) = self.wire.next_item(|input| self.decoder.decode(input)) {
                let name = match &line {
                    Ok(line) => line.tokens.first().map_or("empty", keyword),
                    Err(_) => "invalid",
                };
                let span = tracing::info_span!(
                    "managesieve.command",
                    otel.name = %format!("MANAGESIEVE {name}"),
                    command = name,
                    account = self.account.as_ref().map(|account| account.address.as_str()),
                );
                let started = std::time::Instant::now();
                let action = session.handle(line);
                let end = self.act(&mut session, action).instrument(span).await;
                self.ctx.metrics.observe(name, started);
                // After login a script may come as a literal; before it, only a SASL response.
                let max = if session.is_authenticated() { MAX_SCRIPT_LITERAL } else { MAX_LITERAL_BEFORE_LOGIN };
                self.decoder.set_max_literal(max);
                if let Some(end) = end {
                    return end;
                }
                if let Err(error) = self.wire.flush_if_large().await {
                    return End::Io(error);
                }
            }
            if let Err(error) = self.wire.flush().await {
                return End::Io(error);
            }
            let partial = !self.wire.input.is_empty();
            let (timeout, logging_in) = clock.next_read(tokio::time::Instant::now(), partial, self.account.is_some());
            let farewell = |error: &ReadError| match error {
                ReadError::Timeout if logging_in => Some(Response::bye("login timed out").to_bytes()),
                ReadError::Timeout => Some(Response::bye("idle too long").to_bytes()),
                ReadError::Shutdown => Some(Response::bye("server shutting down").to_bytes()),
                _ => None,
            };
            if let Err(error) = self.wire.read_or_farewell(timeout, shutdown, farewell).await {
                return End::Read(error);
            }
        }
    }

    async fn act(&mut self, session: &mut Session, mut action: Action) -> Option<End> {
        loop {
            action = match action {
                Action::Reply(response) => {
                    self.wire.output.extend(response.to_bytes());
                    return None;
                }
                Action::Authenticate { user, password } => {
                    let outcome = self.log_in(&user, password).await;
                    session.authenticated(outcome)
                }
                Action::StartTls(go_ahead) => return self.start_tls(session, go_ahead).await,
                Action::Call(request) => {
                    let result = self.call(request).await;
                    self.wire.output.extend(session.answered(result).to_bytes());
                    return None;
                }
                Action::Close(response) => {
                    self.wire.last_words(&response.to_bytes()).await;
                    return Some(End::Closed);
                }
            };
        }
    }

    /// The handshake may take the shared TLS limit, and never runs past the login deadline.
    fn handshake_timeout(&self) -> Duration {
        let login_left = self.login_deadline.saturating_duration_since(tokio::time::Instant::now());
        self.ctx.tls_handshake_timeout.min(login_left)
    }

    /// RFC 5804 §2.2; the session re-issues its capabilities after the handshake.
    async fn start_tls(&mut self, session: &mut Session, go_ahead: Response) -> Option<End> {
        let upgraded = self.wire.start_tls(&go_ahead.to_bytes(), &self.ctx.tls, self.handshake_timeout()).await;
        self.decoder = CommandDecoder::new(MAX_LITERAL_BEFORE_LOGIN);
        match upgraded {
            Ok(_) => {
                self.wire.output.extend(session.tls_started().to_bytes());
                None
            }
            Err(StartTlsError::Write(error)) => Some(End::Io(error)),
            Err(StartTlsError::Handshake(error)) => Some(End::TlsHandshake(error)),
        }
    }

    /// As IMAP and POP3: the address's failures are checked first, a failure costs the throttle's delay.
    async fn log_in(&mut self, user: &str, password: Secret) -> AuthOutcome {
        let client = self.peer.ip();
        if self.ctx.throttle.verdict(client).await == Verdict::Refuse {
            self.ctx.metrics.throttled();
            return AuthOutcome::Throttled;
        }
        let request = pb::AuthenticateRequest { username: user.to_owned(), password: password.expose().to_owned() };
        let reply = match self.ctx.directory.clone().authenticate(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                tracing::warn!(error = %status.message(), code = ?status.code(), "authentication unavailable");
                return AuthOutcome::Unavailable;
            }
        };
        if !reply.ok {
            self.ctx.metrics.auth_failed();
            tokio::time::sleep(self.ctx.throttle.failed("managesieve", client, user).await).await;
            return AuthOutcome::Invalid;
        }
        self.ctx.throttle.succeeded(user).await;
        self.session_span.record("account", reply.account_address.as_str());
        self.account = Some(Account { id: reply.account_id.into(), address: reply.account_address });
        AuthOutcome::Ok
    }

    async fn call(&mut self, request: Request) -> Result<Answer, Failure> {
        let Some(account) = &self.account else { return Err(Failure::TryLater) };
        let account_id = account.id.get();
        let mut sieve = self.ctx.sieve.clone();
        let done = |warnings: Vec<String>| Answer::Done { warnings };
        let result = match request {
            Request::HaveSpace { name, size } => {
                let answer = sieve.have_space(pb::SieveSpace { account_id, name, size }).await.map(|r| r.into_inner());
                return match answer {
                    Ok(answer) if answer.fits => Ok(done(Vec::new())),
                    Ok(answer) => Err(quota(&answer.reason)),
                    Err(status) => Err(failure(status)),
                };
            }
            Request::PutScript { name, content } => sieve
                .put_script(pb::SieveScript { account_id, name, content })
                .await
                .map(|reply| done(reply.into_inner().warnings)),
            Request::CheckScript { content } => sieve
                .check_script(pb::SieveCheck { account_id, content })
                .await
                .map(|reply| done(reply.into_inner().warnings)),
            Request::ListScripts => {
                sieve.list_scripts(pb::SieveAccount { account_id }).await.map(|reply| scripts(reply.into_inner()))
            }
            Request::SetActive { name } => sieve
                .set_active(pb::SieveScriptRef { account_id, name: name.unwrap_or_default() })
                .await
                .map(|_| done(Vec::new())),
            Request::GetScript { name } => sieve
                .get_script(pb::SieveScriptRef { account_id, name })
                .await
                .map(|reply| Answer::Script(reply.into_inner().content)),
            Request::DeleteScript { name } => {
                sieve.delete_script(pb::SieveScriptRef { account_id, name }).await.map(|_| done(Vec::new()))
            }
            Request::RenameScript { old_name, new_name } => {
                sieve.rename_script(pb::SieveRename { account_id, old_name, new_name }).await.map(|_| done(Vec::new()))
            }
        };
        result.map_err(failure)
    }
}

fn scripts(list: pb::SieveScriptList) -> Answer {
    Answer::Scripts(list.scripts.into_iter().map(|s| ScriptEntry { name: s.name, active: s.active }).collect())
}

/// The `Sieve` service's refusals (a typed reason in the status) as the session's failures.
fn failure(status: tonic::Status) -> Failure {
    use mailbus_proto::v1::Reason;
    match (status.code(), mailbus_proto::refusal::reason(&status)) {
        (_, Reason::TooManyScripts) => Failure::MaxScripts,
        (_, Reason::ScriptTooLarge) => Failure::MaxSize,
        (_, Reason::ActiveScript) => Failure::Active,
        (tonic::Code::InvalidArgument, _) => Failure::Invalid(status.message().to_owned()),
        (tonic::Code::NotFound, _) => Failure::NonExistent,
        (tonic::Code::AlreadyExists, _) => Failure::AlreadyExists,
        (tonic::Code::ResourceExhausted, _) => Failure::Quota,
        // The contract's code for the active script, from a server that does not type it yet.
        (tonic::Code::FailedPrecondition, _) => Failure::Active,
        (code, _) => {
            tracing::warn!(?code, error = %status.message(), "sieve service failed");
            Failure::TryLater
        }
    }
}

/// HAVESPACE's answer, whose reason is a field of its own (RFC 5804 §1.3's QUOTA/MAXSCRIPTS and
/// QUOTA/MAXSIZE).
fn quota(reason: &str) -> Failure {
    match reason.trim() {
        "maxscripts" => Failure::MaxScripts,
        "maxsize" => Failure::MaxSize,
        _ => Failure::Quota,
    }
}

/// The command name for logs and metrics: one of RFC 5804's, never an argument (which could be a
/// password).
fn keyword(token: &mailbus_managesieve::command::Token) -> &'static str {
    const NAMES: &[&str] = &[
        "AUTHENTICATE",
        "STARTTLS",
        "LOGOUT",
        "CAPABILITY",
        "HAVESPACE",
        "PUTSCRIPT",
        "LISTSCRIPTS",
        "SETACTIVE",
        "GETSCRIPT",
        "DELETESCRIPT",
        "RENAMESCRIPT",
        "CHECKSCRIPT",
        "NOOP",
        "UNAUTHENTICATE",
    ];
    match token {
        mailbus_managesieve::command::Token::Atom(atom) => {
            NAMES.iter().find(|name| name.eq_ignore_ascii_case(atom)).copied().unwrap_or("unknown")
        }
        mailbus_managesieve::command::Token::String(_) => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sieve_services_errors_become_response_codes() {
        use mailbus_proto::v1::Reason;
        let refused = |code, reason| mailbus_proto::refusal::status(code, "refused", reason, "");
        let cases = [
            (
                tonic::Status::invalid_argument("line 2, column 3: oops"),
                Failure::Invalid("line 2, column 3: oops".into()),
            ),
            (tonic::Status::not_found("no script"), Failure::NonExistent),
            (tonic::Status::already_exists("taken"), Failure::AlreadyExists),
            (refused(tonic::Code::FailedPrecondition, Reason::ActiveScript), Failure::Active),
            (refused(tonic::Code::ResourceExhausted, Reason::TooManyScripts), Failure::MaxScripts),
            (refused(tonic::Code::ResourceExhausted, Reason::ScriptTooLarge), Failure::MaxSize),
            (tonic::Status::resource_exhausted("maxstorage: over 1 MiB"), Failure::Quota),
            // The reason decides, never the text.
            (tonic::Status::resource_exhausted("maxscripts: 5 scripts"), Failure::Quota),
            (tonic::Status::unavailable("down"), Failure::TryLater),
        ];
        for (status, expected) in cases {
            assert_eq!(failure(status), expected);
        }
    }

    #[test]
    fn only_command_names_reach_logs() {
        use mailbus_managesieve::command::Token;
        assert_eq!(keyword(&Token::Atom("putScript".into())), "PUTSCRIPT");
        assert_eq!(keyword(&Token::Atom("hunter2".into())), "unknown");
        assert_eq!(keyword(&Token::String(b"LOGOUT".to_vec())), "unknown");
    }
}
