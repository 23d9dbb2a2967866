//! One IMAP session, without I/O (RFC 9051 §3): imap-next frames the client's commands (literals,
//! AUTHENTICATE, IDLE) and imap-codec parses and writes them; the session carries the state through not
//! authenticated, authenticated, selected and logout, asks the [`Store`] port for every operation, and
//! writes its responses into the [`Wire`] port's output, which the connection task sends.
//!
//! A selected session keeps the mailbox's UIDs in order (message number n is `uids[n - 1]`) and the
//! MODSEQ it has reported up to. Changes made elsewhere (another session, another replica, a delivery)
//! arrive as mailbox events ([`Session::mailbox_event`]), which only mark the session out of date; it then
//! asks the store what changed since its MODSEQ and tells the client with EXISTS, FETCH FLAGS and EXPUNGE,
//! at the moments RFC 9051 §7.4.1 allows (EXPUNGE never during FETCH, STORE or SEARCH by message number),
//! and at once during IDLE.
//!
//! One file per command family: `auth` (CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE), `mailbox` (CREATE,
//! DELETE, RENAME, SUBSCRIBE, STATUS, APPEND, quota), `list`, `select`, `fetch`, `store`, `search`
//! (SEARCH, SORT, THREAD), `copy` (COPY, MOVE, EXPUNGE), `sync` (IDLE and untagged updates), `update`
//! (RFC 5267 UPDATE contexts and CANCELUPDATE), `notify` (RFC 5465 NOTIFY's filters and the responses
//! events bring), `compress` (RFC 4978); `selected` is the selected-mailbox view and `response` what
//! they share in writing answers.

mod auth;
mod compress;
mod copy;
mod fetch;
mod list;
mod mailbox;
mod multiappend;
mod notify;
mod response;
mod search;
mod select;
mod selected;
mod store;
mod sync;
#[cfg(test)]
mod tests;
mod update;

use std::collections::VecDeque;
use std::num::{NonZeroU32, NonZeroU64};

use imap_codec::ResponseCodec;
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_next::server::{Error as FrameError, Event, Options, Server};
use imap_next::types::CommandAuthenticate;
use imap_next::{Interrupt, Io, State as _};
use imap_types::IntoStatic;
use imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_types::command::{CommandBody, FetchModifier, SelectParameter, StoreModifier};
use imap_types::core::{Atom, Charset, QuotedChar, Tag, Vec1};
use imap_types::extensions::namespace::Namespace;
use imap_types::extensions::sort::SortCriterion;
use imap_types::extensions::thread::ThreadingAlgorithm;
use imap_types::fetch::{Macro, MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Part, Section};
use imap_types::flag::{Flag, FlagFetch, FlagNameAttribute, FlagPerm, StoreResponse, StoreType};
use imap_types::mailbox::{ListMailbox, Mailbox};
use imap_types::response::{Capability, Code, CodeOther, CommandContinuationRequest, Data, Greeting, Response, Status};
use imap_types::search::SearchKey;
use imap_types::sequence::SequenceSet;
use imap_types::status::{StatusDataItem, StatusDataItemName};
use mailbus_address::AccountId;
use mailbus_proto::v1 as pb;
use mailbus_sasl::PlainError;

use crate::multiappend as append_syntax;
use crate::render::nz;
use crate::store::{LoginOutcome, Store, StoreError, Wire};
use crate::{DELIMITER, unauthenticate};
use crate::{
    binary_origin, context, create_special_use, line_meter, list_extended, object_id, recent, render, savedate, sort,
    thread,
};
use response::*;
pub use response::{bye, spell_imap4rev1};

use selected::{Selected, announce_new_keywords, flags_of};

/// Before login, the most a command may hold, literals included: LOGIN, AUTHENTICATE PLAIN and ID need
/// far less. A client that sends more is told BYE and closed, so an address that has no account cannot
/// make a session hold more than this (and the read buffer) in memory.
const PRE_LOGIN_COMMAND: u32 = 16 * 1024;
/// Before login, the largest literal that gets a `+`; a larger one is refused with BAD before it is sent.
const PRE_LOGIN_LITERAL: u32 = 8 * 1024;

/// What a session is configured with, decided by the connection before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// APPENDLIMIT, and the framer's bound on a literal after login.
    pub max_message_size: u64,
    /// Failed logins before `BYE`.
    pub max_auth_failures: usize,
    /// The connection is TLS from its first byte (993).
    pub tls: bool,
    /// LOGIN and AUTHENTICATE are allowed without TLS (the plaintext-login policy for this client).
    pub plaintext_allowed: bool,
}

/// How the framer bounds what it buffers: tightly before login, up to APPENDLIMIT after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    PreLogin,
    LoggedIn,
}

/// The extensions a session has turned on, with ENABLE or a command that implies one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Enabled {
    /// ENABLE CONDSTORE, or a command that implies it (RFC 7162 §3.1).
    condstore: bool,
    /// ENABLE QRESYNC (RFC 7162 §3.2): expunges are reported as VANISHED.
    qresync: bool,
    /// ENABLE UTF8=ACCEPT (RFC 6855).
    utf8: bool,
    /// ENABLE IMAP4rev2 (RFC 9051): UTF-8 names, ESEARCH replies to SEARCH, no \Recent.
    rev2: bool,
}

/// A logged-in account.
struct Login<L> {
    account_id: AccountId,
    address: String,
    enabled: Enabled,
    /// RFC 5465 NOTIFY SET's filters and events, while set (boxed: most sessions never ask).
    notify: Option<Box<notify::Watch>>,
    /// What the store's login handed out (the connection slot, the event subscription), dropped with it.
    lease: L,
}

enum State<L> {
    NotAuthenticated { failures: usize },
    Authenticated(Login<L>),
    Selected(Login<L>, Selected),
}

impl<L> State<L> {
    fn login(&self) -> Option<&Login<L>> {
        match self {
            State::Authenticated(login) | State::Selected(login, _) => Some(login),
            State::NotAuthenticated { .. } => None,
        }
    }

    fn login_mut(&mut self) -> Option<&mut Login<L>> {
        match self {
            State::Authenticated(login) | State::Selected(login, _) => Some(login),
            State::NotAuthenticated { .. } => None,
        }
    }

    fn selected(&mut self) -> Option<&mut Selected> {
        match self {
            State::Selected(_, selected) => Some(selected),
            _ => None,
        }
    }

    fn enabled(&self) -> Enabled {
        self.login().map(|l| l.enabled).unwrap_or_default()
    }

    /// Back to authenticated (CLOSE, UNSELECT, a failed SELECT).
    fn deselect(&mut self) {
        if let State::Selected(..) = self {
            let State::Selected(login, _) = std::mem::replace(self, State::NotAuthenticated { failures: 0 }) else {
                unreachable!()
            };
            *self = State::Authenticated(login);
        }
    }
}

/// What the framer is in the middle of: ordinary commands, an AUTHENTICATE exchange, or IDLE (each with
/// the tag its end answers).
enum Mode {
    Commands,
    Authenticating(Tag<'static>),
    Idling(Tag<'static>),
}

/// When a command's untagged updates may include EXPUNGE (RFC 9051 §7.4.1).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Full,
    NoExpunge,
}

/// How handling one input left the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
    StartTls,
    Compress,
}

/// What the connection does next, after [`Session::advance`].
#[derive(Debug)]
pub enum Step {
    /// Everything received is handled and answered (and sent): read more, or wait for an event.
    NeedInput,
    /// STARTTLS was answered and sent: drop any input received, handshake, then call
    /// [`Session::tls_started`] (or close if the handshake fails).
    StartTls,
    /// COMPRESS DEFLATE was answered and its OK sent uncompressed: drop any input received, turn on
    /// compression both ways in the wire, then call [`Session::compression_started`] (RFC 4978 §3).
    Compress,
    /// The session is over (LOGOUT, too many failures, a limit); its last words are sent.
    Close,
    /// The connection failed while sending.
    Failed(std::io::Error),
}

pub struct Session<S: Store, W: Wire> {
    store: S,
    wire: W,
    config: Config,
    server: Server,
    /// The limits `server` was made with; replaced by a logged-in framer once the login is answered.
    framing: Framing,
    /// Before login: bytes handed to the framer since it last produced a command.
    fed: usize,
    /// After login: the text of the command being received, outside its literals.
    meter: line_meter::LineMeter,
    tls: bool,
    /// COMPRESS DEFLATE is active (RFC 4978): for good, UNAUTHENTICATE or not.
    compressed: bool,
    state: State<S::Lease>,
    mode: Mode,
    /// The ESEARCH or LIST-EXTENDED options of the command being answered.
    extended: Option<render::Extended>,
    /// What the framer produced while a command was being answered, for `advance` to handle next.
    pending: VecDeque<Result<Event, FrameError>>,
}

/// The most an empty buffer keeps of its allocation while the session waits.
const KEPT_CAPACITY: usize = 16 * 1024;

/// Frees an empty buffer's allocation when a large command made it larger than [`KEPT_CAPACITY`].
fn release(buffer: &mut Vec<u8>) {
    if buffer.is_empty() && buffer.capacity() > KEPT_CAPACITY {
        *buffer = Vec::new();
    }
}

/// A framer for a new connection (with its greeting) or for one that has just started TLS (whose
/// greeting was already sent, so the new one is taken out unsent).
fn new_server(config: &Config, capabilities: Option<Vec1<Capability<'static>>>, framing: Framing) -> Server {
    let mut options = Options::default();
    options.crlf_relaxed = true;
    match framing {
        Framing::PreLogin => {
            options.max_literal_size = PRE_LOGIN_LITERAL;
            options.max_command_size = PRE_LOGIN_COMMAND;
            let _ = options.set_literal_reject_text("literal too large before login".into());
        }
        Framing::LoggedIn => {
            let limit = u32::try_from(config.max_message_size).unwrap_or(u32::MAX - 65536);
            options.max_literal_size = limit;
            options.max_command_size = limit.saturating_add(64 * 1024);
            // imap-next answers BAD with a text alone: a `[TOOBIG]` in front is not a valid text, and it
            // would answer `BAD ...` instead.
            let _ = options.set_literal_reject_text("literal larger than APPENDLIMIT".into());
        }
    }
    let fresh = capabilities.is_none();
    let greeting = Greeting::ok(capabilities.map(Code::Capability), "mailbus IMAP ready").expect("valid greeting");
    let mut server = Server::new(options, greeting);
    if fresh {
        // Swallow the greeting: after STARTTLS it must not be sent again.
        let _ = server.next();
        let _ = server.next();
    }
    server
}

impl<S: Store, W: Wire> Session<S, W> {
    /// A session for a new connection; its greeting is queued for the first [`Session::advance`].
    pub fn new(store: S, wire: W, config: Config) -> Self {
        let mut session = Session {
            store,
            wire,
            config,
            server: new_server(&config, None, Framing::PreLogin),
            framing: Framing::PreLogin,
            fed: 0,
            meter: Default::default(),
            tls: config.tls,
            compressed: false,
            state: State::NotAuthenticated { failures: 0 },
            mode: Mode::Commands,
            extended: None,
            pending: VecDeque::new(),
        };
        let greeting = session.capabilities();
        session.server = new_server(&session.config, Some(greeting), Framing::PreLogin);
        session
    }

    pub fn wire(&mut self) -> &mut W {
        &mut self.wire
    }

    /// The wire and the login's lease together (the connection waits on both at once).
    pub fn wire_and_lease(&mut self) -> (&mut W, Option<&mut S::Lease>) {
        (&mut self.wire, self.state.login_mut().map(|l| &mut l.lease))
    }

    /// The logged-in account and its address.
    pub fn account(&self) -> Option<(AccountId, &str)> {
        self.state.login().map(|l| (l.account_id, l.address.as_str()))
    }

    /// The selected mailbox's name.
    pub fn selected_mailbox(&self) -> Option<&str> {
        match &self.state {
            State::Selected(_, selected) => Some(&selected.name),
            _ => None,
        }
    }

    /// The handshake after [`Step::StartTls`] succeeded: a fresh framer for what comes over TLS.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.server = new_server(&self.config, None, self.framing);
        self.fed = 0;
    }

    /// The events may have been missed (the subscription was lost and made again): look at the store on
    /// the next occasion.
    pub fn events_missed(&mut self) {
        if let Some(selected) = self.state.selected() {
            selected.dirty = true;
        }
    }

    /// ENABLE UTF8=ACCEPT or IMAP4rev2 was given: mailbox names are UTF-8 both ways.
    fn utf8(&self) -> bool {
        let enabled = self.state.enabled();
        enabled.utf8 || enabled.rev2
    }

    fn rev2(&self) -> bool {
        self.state.enabled().rev2
    }

    fn name_of(&self, mailbox: &Mailbox<'_>) -> Option<String> {
        response::mailbox_name_in(mailbox, self.utf8())
    }

    /// Handles what the wire's input holds: frames it, answers each command (asking the store), and
    /// writes the answers into the wire's output, sending as it goes; until the input is used up, or the
    /// session ends or starts TLS.
    pub async fn advance(&mut self) -> Step {
        loop {
            let next = match self.pending.pop_front() {
                Some(Ok(event)) => Ok(event),
                Some(Err(error)) => Err(Interrupt::Error(error)),
                None => self.server.next(),
            };
            let flow = match next {
                Ok(event) => {
                    if !matches!(event, Event::GreetingSent { .. } | Event::ResponseSent { .. }) {
                        self.fed = 0;
                    }
                    // Boxed, as below: a command's future (the store's calls inside it) exists only while
                    // it runs, and a connection waiting for input does not carry room for the largest.
                    Box::pin(self.event(event)).await
                }
                Err(Interrupt::Io(Io::Output(mut bytes))) => {
                    spell_imap4rev1(&mut bytes);
                    self.wire.output().extend_from_slice(&bytes);
                    if let Err(error) = self.wire.flush_if_large().await {
                        return Step::Failed(error);
                    }
                    Flow::Continue
                }
                Err(Interrupt::Io(Io::NeedMoreInput)) => {
                    if let Err(error) = self.wire.flush().await {
                        return Step::Failed(error);
                    }
                    if self.framing == Framing::PreLogin && self.state.login().is_some() {
                        // The login is answered and the framer has consumed all it was given (it is fed
                        // one line at a time before login): what follows gets the logged-in limits.
                        self.server = new_server(&self.config, None, Framing::LoggedIn);
                        self.framing = Framing::LoggedIn;
                    }
                    if self.wire.input().is_empty() {
                        // An idle session keeps no buffer a large command (APPEND, FETCH) grew.
                        release(self.wire.input());
                        release(self.wire.output());
                        return Step::NeedInput;
                    }
                    self.feed().await
                }
                Err(Interrupt::Error(error)) => {
                    self.fed = 0;
                    Box::pin(self.malformed(error)).await
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    let _ = self.wire.flush().await;
                    return Step::Close;
                }
                Flow::StartTls => return Step::StartTls,
                Flow::Compress => return Step::Compress,
            }
        }
    }

    /// Hands the framer the input it may have. Logged in, all of it. Before login, up to the next line end
    /// only, so that when the login is answered the framer holds nothing more and can be replaced; and a
    /// command that grows past [`PRE_LOGIN_COMMAND`] ends the session instead of growing a buffer.
    async fn feed(&mut self) -> Flow {
        if self.framing == Framing::LoggedIn {
            if self.meter.take(self.wire.input()).is_err() {
                tracing::info!("command text over 64 KiB; closing");
                self.wire.last_words(&bye(Some("LIMIT"), "command line too long")).await;
                return Flow::Close;
            }
            let input = std::mem::take(self.wire.input());
            self.server.enqueue_input(&input);
            // The buffer goes back, emptied, keeping its allocation.
            *self.wire.input() = input;
            self.wire.input().clear();
            return Flow::Continue;
        }
        let input = self.wire.input();
        let end = input.iter().position(|&b| b == b'\n').map_or(input.len(), |i| i + 1);
        if self.fed + end > PRE_LOGIN_COMMAND as usize {
            tracing::info!("command too long before login; closing");
            self.wire.last_words(&bye(Some("LIMIT"), "command too long before login")).await;
            return Flow::Close;
        }
        self.server.enqueue_input(&input[..end]);
        input.drain(..end);
        self.fed += end;
        Flow::Continue
    }

    /// Writes out what the framer has queued so far (a long FETCH goes out as it is read, not all at the
    /// end). A command the client pipelined meanwhile is kept for `advance`.
    async fn pump(&mut self) -> std::io::Result<()> {
        loop {
            match self.server.next() {
                Err(Interrupt::Io(Io::Output(mut bytes))) => {
                    spell_imap4rev1(&mut bytes);
                    self.wire.output().extend_from_slice(&bytes);
                    self.wire.flush_if_large().await?;
                }
                Ok(Event::ResponseSent { .. } | Event::GreetingSent { .. }) => {}
                Ok(event) => {
                    self.pending.push_back(Ok(event));
                    return Ok(());
                }
                Err(Interrupt::Error(error)) => {
                    self.pending.push_back(Err(error));
                    return Ok(());
                }
                Err(Interrupt::Io(Io::NeedMoreInput)) => return Ok(()),
            }
        }
    }

    /// The RFC 8474 items the command being answered asked for.
    fn object_ids(&mut self) -> object_id::ObjectIds {
        match self.extended.take() {
            Some(render::Extended::ObjectIds(ids)) => ids,
            other => {
                self.extended = other;
                object_id::ObjectIds::default()
            }
        }
    }

    /// An untagged response imap-types has no type for (ESEARCH), written after everything queued so far.
    async fn raw_untagged(&mut self, line: String) {
        if let Err(error) = self.pump().await {
            tracing::debug!(%error, "client went away");
        }
        self.wire.output().extend_from_slice(line.as_bytes());
    }

    /// Moves every queued response into the output and sends it (for a session about to close).
    async fn drain(&mut self) {
        loop {
            match self.server.next() {
                Err(Interrupt::Io(Io::Output(mut bytes))) => {
                    spell_imap4rev1(&mut bytes);
                    self.wire.output().extend_from_slice(&bytes)
                }
                Ok(Event::ResponseSent { .. } | Event::GreetingSent { .. }) => {}
                _ => break,
            }
        }
        let _ = self.wire.flush().await;
    }

    fn command_metric(&self, name: &str) {
        self.store.command_seen(&name.to_ascii_lowercase());
    }

    /// imap-next could not frame or parse what the client sent: BAD, with the tag when there was one,
    /// and the session goes on (imap-next answered an over-long synchronizing literal itself).
    async fn malformed(&mut self, error: FrameError) -> Flow {
        let (bytes, why): (&[u8], &str) = match &error {
            FrameError::LiteralTooLong { .. } => return Flow::Continue,
            FrameError::CommandTooLong { discarded_bytes } => (discarded_bytes.declassify(), "command too long"),
            FrameError::MalformedMessage { discarded_bytes } | FrameError::ExpectedCrlfGotLf { discarded_bytes } => {
                (discarded_bytes.declassify(), "unknown command or syntax error")
            }
        };
        match std::mem::replace(&mut self.mode, Mode::Commands) {
            Mode::Authenticating(tag) => {
                self.command_metric("malformed");
                // A continuation line that is not base64 ends the exchange; imap-next waits for us to say so.
                let _ = self.server.authenticate_finish(bad(Some(tag), "the SASL response is not base64"));
                return Flow::Continue;
            }
            Mode::Idling(tag) => {
                self.mode = Mode::Idling(tag);
                self.command_metric("malformed");
                self.server.enqueue_status(bad(None, "expected DONE"));
                return Flow::Continue;
            }
            Mode::Commands => {}
        }
        // RFC 3502 MULTIAPPEND and RFC 4469 CATENATE: an APPEND with several messages, or with parts.
        if let FrameError::MalformedMessage { .. } = &error
            && let Some(append) = append_syntax::parse(bytes)
        {
            return self.multiappend(append).await;
        }
        // An APPEND whose literals together passed what one command may hold (RFC 7889 TOOBIG).
        if let FrameError::CommandTooLong { .. } = &error
            && let Some(tag) = append_syntax::append_tag(bytes)
        {
            self.command_metric("append");
            let status = no(tag, Some(Code::TooBig), "the APPEND's messages together exceed APPENDLIMIT");
            self.server.enqueue_status(status);
            return Flow::Continue;
        }
        // RFC 5182 `$`: the saved search result, written out as the set it stands for.
        if let FrameError::MalformedMessage { .. } = &error
            && let Some(selected) = self.state.selected()
            && let Some(line) = render::substitute_saved(bytes, &selected.saved, &selected.uids)
        {
            let tag = bytes.iter().position(|&b| b == b' ').and_then(|end| Tag::try_from(bytes[..end].to_vec()).ok());
            return match line {
                render::Substituted::Empty => {
                    self.server.enqueue_status(Status::ok(tag, None, "no messages in $").expect("ASCII"));
                    Flow::Continue
                }
                render::Substituted::TooLong => {
                    self.command_metric("malformed");
                    self.server.enqueue_status(bad(tag, "the command is too long once $ is written out"));
                    Flow::Continue
                }
                render::Substituted::Line(line) => {
                    // Run it now, in its place among pipelined commands; it may use the extended syntax too.
                    let (extended, line) = match render::rewrite_extended(&line) {
                        Some((extended, rest)) => (Some(extended), rest),
                        None => (None, line),
                    };
                    match imap_codec::CommandCodec::default().decode(&line) {
                        Ok((_, command)) => {
                            let command = command.into_static();
                            self.command_metric(command.body.name());
                            self.extended = extended;
                            let flow = self.command(command.tag, command.body).await;
                            self.extended = None;
                            flow
                        }
                        Err(_) => {
                            self.command_metric("malformed");
                            self.server.enqueue_status(bad(tag, "unknown command or syntax error"));
                            Flow::Continue
                        }
                    }
                }
            };
        }
        // RFC 5267 §4.3.5 CANCELUPDATE: the named UPDATE contexts end.
        if let FrameError::MalformedMessage { .. } = &error
            && let Some(cancel) = context::cancel_update(bytes)
        {
            self.command_metric("cancelupdate");
            let status = match cancel {
                Ok((tag, tags)) => match Tag::try_from(tag) {
                    Ok(tag) if self.state.selected().is_some() => self.cancel_update(tag, &tags),
                    Ok(tag) => bad(Some(tag), "select a mailbox first"),
                    Err(_) => bad(None, "bad tag"),
                },
                Err(tag) => bad(Tag::try_from(tag).ok(), "CANCELUPDATE takes one or more quoted tags"),
            };
            self.server.enqueue_status(status);
            return Flow::Continue;
        }
        // RFC 5465 NOTIFY: parsed here, imap-codec having no grammar for it.
        if let FrameError::MalformedMessage { .. } = &error
            && let Some((tag, command)) = crate::notify::parse(bytes)
        {
            self.command_metric("notify");
            self.notify(tag, command).await;
            return Flow::Continue;
        }
        // RFC 8437 UNAUTHENTICATE: back to the not-authenticated state, TLS kept.
        if let FrameError::MalformedMessage { .. } = &error
            && let Some(tag) = unauthenticate::tag_of(bytes)
        {
            self.command_metric("unauthenticate");
            let status = match self.state {
                State::NotAuthenticated { .. } => bad(Some(tag), "not authenticated"),
                _ => {
                    // The login goes with its selected mailbox (no expunge), ENABLE-d extensions,
                    // connection slot and event subscription.
                    self.state = State::NotAuthenticated { failures: 0 };
                    ok(tag, None, "UNAUTHENTICATE completed")
                }
            };
            self.server.enqueue_status(status);
            return Flow::Continue;
        }
        // ESEARCH and LIST-EXTENDED syntax: the options cut out, the rest parsed by imap-codec.
        if let FrameError::MalformedMessage { .. } = &error
            && bytes.len() as u64 <= self.config.max_message_size.saturating_add(64 * 1024)
            && render::largest_literal(bytes) <= 64 * 1024
            && let Some((extended, rest)) = render::rewrite_extended(bytes)
            && let Ok((_, command)) = imap_codec::CommandCodec::default().decode(&rest)
        {
            let command = command.into_static();
            self.extended = Some(extended);
            let flow = self.traced_command(command.tag, command.body).await;
            self.extended = None;
            return flow;
        }
        self.command_metric("malformed");
        let tag = bytes.iter().position(|&b| b == b' ').and_then(|end| Tag::try_from(bytes[..end].to_vec()).ok());
        self.server.enqueue_status(bad(tag, why));
        Flow::Continue
    }

    /// Runs a command in its own span, which names the account and the selected mailbox (as they are
    /// once the command is done, so LOGIN and SELECT show what they led to), and times it.
    async fn traced_command(&mut self, tag: Tag<'static>, body: CommandBody<'static>) -> Flow {
        let name = body.name();
        self.command_metric(name);
        let span = tracing::info_span!(
            "imap.command",
            otel.name = %format!("IMAP {}", name.to_ascii_uppercase()),
            command = name,
            account = tracing::field::Empty,
            mailbox = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let flow = tracing::Instrument::instrument(self.command(tag, body), span.clone()).await;
        self.store.command_answered(name, started.elapsed());
        match &self.state {
            State::Selected(login, selected) => {
                span.record("account", login.address.as_str());
                span.record("mailbox", selected.name.as_str());
            }
            State::Authenticated(login) => {
                span.record("account", login.address.as_str());
            }
            State::NotAuthenticated { .. } => {}
        }
        flow
    }

    async fn event(&mut self, event: Event) -> Flow {
        match event {
            Event::GreetingSent { .. } | Event::ResponseSent { .. } => Flow::Continue,
            Event::CommandReceived { command } => self.traced_command(command.tag, command.body).await,
            Event::CommandAuthenticateReceived { command_authenticate } => {
                self.command_metric("authenticate");
                self.authenticate_start(command_authenticate).await
            }
            Event::AuthenticateDataReceived { authenticate_data } => {
                let Mode::Authenticating(tag) = std::mem::replace(&mut self.mode, Mode::Commands) else {
                    unreachable!("imap-next reports data only inside AUTHENTICATE")
                };
                let status = match authenticate_data {
                    AuthenticateData::Continue(data) => match self.plain(tag.clone(), data.declassify()).await {
                        Ok(status) => status,
                        Err(flow) => return flow,
                    },
                    AuthenticateData::Cancel => bad(Some(tag), "authentication cancelled"),
                };
                let _ = self.server.authenticate_finish(status);
                Flow::Continue
            }
            Event::IdleCommandReceived { tag } => {
                self.command_metric("idle");
                if self.state.login().is_none() {
                    let _ = self.server.idle_reject(bad(Some(tag), "log in first"));
                    return Flow::Continue;
                }
                let accept = CommandContinuationRequest::basic(None, "idling").expect("valid continuation");
                let _ = self.server.idle_accept(accept);
                self.mode = Mode::Idling(tag);
                self.sync(Sync::Full, true).await
            }
            Event::IdleDoneReceived => {
                if let Mode::Idling(tag) = std::mem::replace(&mut self.mode, Mode::Commands) {
                    self.server.enqueue_status(ok(tag, None, "IDLE terminated"));
                }
                Flow::Continue
            }
        }
    }

    /// Answers one command: dispatched by the state it is valid in, then the untagged updates RFC 9051
    /// §7.4.1 allows, then its tagged status.
    async fn command(&mut self, tag: Tag<'static>, body: CommandBody<'static>) -> Flow {
        // RFC 9051 §7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH by message number.
        let by_number = matches!(
            &body,
            CommandBody::Fetch { uid: false, .. }
                | CommandBody::Store { uid: false, .. }
                | CommandBody::Search { uid: false, .. }
                | CommandBody::Thread { uid: false, .. }
                | CommandBody::Sort { uid: false, .. }
        );
        let any_state = matches!(
            &body,
            CommandBody::Capability
                | CommandBody::Noop
                | CommandBody::Check
                | CommandBody::Logout
                | CommandBody::Id { .. }
                | CommandBody::StartTLS
        );
        let answer = match self.state.login().map(|l| l.account_id) {
            _ if any_state => self.any_state_command(tag, body).await,
            None => self.not_authenticated_command(tag, body).await,
            Some(id) => self.authenticated_command(tag, body, id).await,
        };
        let status = match answer {
            Ok(status) => status,
            Err(flow) => return flow,
        };
        if matches!(self.state, State::Selected(..)) {
            let mode = if by_number { Sync::NoExpunge } else { Sync::Full };
            if let Flow::Close = self.sync(mode, false).await {
                return Flow::Close;
            }
        }
        self.server.enqueue_status(status);
        Flow::Continue
    }

    /// CAPABILITY, NOOP, CHECK, LOGOUT, ID and STARTTLS, valid in any state (RFC 9051 §6.1).
    async fn any_state_command(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
    ) -> Result<Status<'static>, Flow> {
        let name = body.name();
        Ok(match body {
            CommandBody::Capability => {
                self.server.enqueue_data(Data::Capability(self.capabilities()));
                ok(tag, None, "CAPABILITY completed")
            }
            CommandBody::Noop | CommandBody::Check => {
                if let Flow::Close = self.sync(Sync::Full, true).await {
                    return Err(Flow::Close);
                }
                ok(tag, None, &format!("{name} completed"))
            }
            CommandBody::Logout => {
                self.server.enqueue_status(Status::bye(None, "logging out").expect("ASCII"));
                self.server.enqueue_status(ok(tag, None, "LOGOUT completed"));
                self.drain().await;
                return Err(Flow::Close);
            }
            CommandBody::Id { .. } => {
                let field = |k: &str, v: &str| (render::istring(k), render::nstring(Some(v)));
                let parameters = vec![field("name", "mailbus"), field("version", env!("CARGO_PKG_VERSION"))];
                self.server.enqueue_data(Data::Id { parameters: Some(parameters) });
                ok(tag, None, "ID completed")
            }
            // TLS goes under compression, never over it (RFC 4978 §4): after COMPRESS and UNAUTHENTICATE
            // the connection stays as it is.
            CommandBody::StartTLS if self.compressed => bad(Some(tag), "STARTTLS is not possible after COMPRESS"),
            CommandBody::StartTLS if !self.tls && self.state.login().is_none() => {
                return Err(self.start_tls(tag).await);
            }
            CommandBody::StartTLS => bad(Some(tag), "TLS is already active"),
            _ => bad(Some(tag), "command not supported"),
        })
    }

    /// The not-authenticated state's LOGIN (RFC 9051 §6.2.3); AUTHENTICATE comes as its own event.
    async fn not_authenticated_command(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
    ) -> Result<Status<'static>, Flow> {
        Ok(match body {
            CommandBody::Login { username, password } => {
                if !self.tls && !self.config.plaintext_allowed {
                    no(tag, Some(other_code("PRIVACYREQUIRED")), "LOGIN is disabled until STARTTLS")
                } else {
                    let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                    let password = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                    match self.log_in(tag, &user, &password).await {
                        Ok(status) => status,
                        Err(flow) => return Err(flow),
                    }
                }
            }
            _ => bad(Some(tag), "log in first"),
        })
    }

    /// The authenticated state's commands (RFC 9051 §6.3), valid when a mailbox is selected too.
    async fn authenticated_command(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
        id: AccountId,
    ) -> Result<Status<'static>, Flow> {
        let selected = matches!(self.state, State::Selected(..));
        Ok(match body {
            CommandBody::Login { .. } => bad(Some(tag), "already authenticated"),
            CommandBody::Compress { algorithm } => return self.compress(tag, algorithm).await,
            CommandBody::Enable { .. } if selected => {
                bad(Some(tag), "ENABLE is for the authenticated state (RFC 5161)")
            }
            CommandBody::Enable { capabilities } => {
                let mut enabled = Vec::new();
                for capability in capabilities.as_ref() {
                    let name = capability.to_string();
                    if name.eq_ignore_ascii_case("UTF8=ACCEPT")
                        && let Some(login) = self.state.login_mut()
                    {
                        login.enabled.utf8 = true;
                        enabled.push(capability.clone());
                        continue;
                    }
                    if name.eq_ignore_ascii_case("IMAP4REV2")
                        && let Some(login) = self.state.login_mut()
                    {
                        login.enabled.rev2 = true;
                        enabled.push(capability.clone());
                        continue;
                    }
                    let qresync = name.eq_ignore_ascii_case("QRESYNC");
                    if (qresync || name.eq_ignore_ascii_case("CONDSTORE"))
                        && let Some(login) = self.state.login_mut()
                    {
                        // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
                        login.enabled.condstore = true;
                        login.enabled.qresync |= qresync;
                        enabled.push(capability.clone());
                    }
                }
                self.server.enqueue_data(Data::Enabled { capabilities: enabled });
                ok(tag, None, "ENABLE completed")
            }
            CommandBody::Namespace => {
                let personal = Namespace {
                    prefix: render::istring(""),
                    delimiter: Some(QuotedChar::try_from(DELIMITER).expect("a valid delimiter")),
                    extensions: Vec::new(),
                };
                self.server.enqueue_data(Data::Namespace {
                    personal: vec![personal],
                    other: Vec::new(),
                    shared: Vec::new(),
                });
                ok(tag, None, "NAMESPACE completed")
            }
            CommandBody::Select { mailbox, parameters } | CommandBody::Examine { mailbox, parameters }
                if parameters.iter().any(|p| matches!(p, SelectParameter::QResync { .. }))
                    && !self.state.enabled().qresync =>
            {
                let _ = mailbox;
                bad(Some(tag), "ENABLE QRESYNC first")
            }
            CommandBody::Select { mailbox, parameters } => self.select(tag, id, &mailbox, false, &parameters).await,
            CommandBody::Examine { mailbox, parameters } => self.select(tag, id, &mailbox, true, &parameters).await,
            CommandBody::Create { mailbox } => self.create(tag, id, &mailbox).await,
            CommandBody::Delete { mailbox } => self.delete(tag, id, &mailbox).await,
            CommandBody::Rename { from, to } => self.rename(tag, id, &from, &to).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(tag, id, &mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(tag, id, &mailbox, false).await,
            CommandBody::List { reference, mailbox_wildcard } => {
                self.list(tag, id, &reference, &mailbox_wildcard, false).await
            }
            CommandBody::Lsub { reference, mailbox_wildcard } => {
                self.list(tag, id, &reference, &mailbox_wildcard, true).await
            }
            CommandBody::Status { mailbox, item_names } => self.status(tag, id, &mailbox, &item_names).await,
            CommandBody::Append { mailbox, flags, date, message } => {
                let data = match &message {
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
                };
                let date = date.map(|d| d.as_ref().timestamp());
                self.append(tag, id, &mailbox, &flags, date, data).await
            }
            CommandBody::GetQuotaRoot { mailbox } => self.quota(tag, id, Some(mailbox)).await,
            CommandBody::GetQuota { root } => {
                if root.as_ref().is_empty() {
                    self.quota(tag, id, None).await
                } else {
                    no(tag, Some(other_code("NONEXISTENT")), "the only quota root is \"\"")
                }
            }
            body if selected => self.selected_command(tag, body, id).await,
            _ => bad(Some(tag), "select a mailbox first"),
        })
    }

    /// The selected state's commands (RFC 9051 §6.4).
    async fn selected_command(
        &mut self,
        tag: Tag<'static>,
        body: CommandBody<'static>,
        id: AccountId,
    ) -> Status<'static> {
        match body {
            CommandBody::Close => {
                let read_only = self.state.selected().is_some_and(|s| s.read_only);
                if !read_only
                    && let Some(selected) = self.state.selected()
                    && !selected.uids.is_empty()
                {
                    // CLOSE expunges silently (RFC 9051 §6.4.2).
                    let request = pb::ExpungeRequest {
                        account_id: id.get(),
                        mailbox: selected.name.clone(),
                        uids: selected.uids.clone(),
                        deleted_only: true,
                    };
                    if let Err(status) = self.store.expunge(request).await {
                        tracing::warn!(%status, "CLOSE could not expunge");
                    }
                }
                self.state.deselect();
                ok(tag, None, "CLOSE completed")
            }
            CommandBody::Unselect => {
                self.state.deselect();
                ok(tag, None, "UNSELECT completed")
            }
            CommandBody::Expunge => self.expunge(tag, id, None).await,
            CommandBody::ExpungeUid { sequence_set } => self.expunge(tag, id, Some(&sequence_set)).await,
            CommandBody::Search { charset, criteria, uid } => {
                self.search(tag, id, charset.as_ref(), criteria.as_ref(), uid).await
            }
            CommandBody::Thread { algorithm, charset, search_criteria, uid } => {
                self.thread(tag, id, &algorithm, &charset, search_criteria.as_ref(), uid).await
            }
            CommandBody::Sort { sort_criteria, charset, search_criteria, uid } => {
                self.sort(tag, id, sort_criteria.as_ref(), &charset, search_criteria.as_ref(), uid).await
            }
            CommandBody::Fetch { sequence_set, macro_or_item_names, uid, modifiers } => {
                let changed_since = modifiers.iter().find_map(|m| match m {
                    FetchModifier::ChangedSince(since) => Some(since.get()),
                    _ => None,
                });
                let vanished = modifiers.iter().any(|m| matches!(m, FetchModifier::Vanished));
                if vanished && !(uid && changed_since.is_some() && self.state.enabled().qresync) {
                    // RFC 7162 §3.2.6: VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC enabled.
                    bad(Some(tag), "VANISHED needs UID FETCH with CHANGEDSINCE, after ENABLE QRESYNC")
                } else {
                    let earlier = match changed_since.filter(|_| vanished) {
                        Some(since) => self.vanished_earlier(id, &sequence_set, since).await,
                        None => Ok(()),
                    };
                    match earlier {
                        Ok(()) => self.fetch(tag, id, &sequence_set, &macro_or_item_names, uid, changed_since).await,
                        Err(status) => refusal(tag, &status),
                    }
                }
            }
            CommandBody::Store { sequence_set, kind, response, flags, uid, modifiers } => {
                let unchanged_since = modifiers.iter().map(|StoreModifier::UnchangedSince(n)| *n).next();
                self.store(tag, id, &sequence_set, &kind, &response, &flags, uid, unchanged_since).await
            }
            CommandBody::Copy { sequence_set, mailbox, uid } => {
                self.copy(tag, id, &sequence_set, &mailbox, uid, false).await
            }
            CommandBody::Move { sequence_set, mailbox, uid } => {
                self.copy(tag, id, &sequence_set, &mailbox, uid, true).await
            }
            _ => bad(Some(tag), "command not supported"),
        }
    }
}
