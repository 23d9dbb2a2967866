//! One IMAP connection. imap-next frames the client's commands (literals, AUTHENTICATE, IDLE) and
//! imap-codec parses and writes them, both without I/O; this module moves the bytes, upgrades to TLS, and
//! carries the session through its states (RFC 9051 §3: not authenticated, authenticated, selected,
//! logout), each command a call on the mailbox role.
//!
//! A selected session keeps the mailbox's UIDs in order (message number n is `uids[n - 1]`) and the
//! MODSEQ it has reported up to. Changes made elsewhere (another session, another replica, a delivery)
//! arrive as NATS events, which only mark the session out of date; it then asks the store what changed
//! since its MODSEQ and tells the client with EXISTS, FETCH FLAGS and EXPUNGE, at the moments RFC 9051
//! §7.4.1 allows (EXPUNGE never during FETCH, STORE or SEARCH by message number), and at once during IDLE.

mod binary_origin;
mod create_special_use;
mod line_meter;
mod list_extended;
pub mod object_id;
mod recent;
pub mod render;
mod sort;
mod thread;
mod unauthenticate;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
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
use mailbus_acceptor::wire::{self, ReadError, StartTlsError, Wire};
use mailbus_address::AccountId;
use mailbus_grpc::TracedChannel;
use mailbus_jetstream::Names;
use mailbus_proto::v1::{self as pb, directory_client::DirectoryClient, mailbox_client::MailboxClient};
use mailbus_sasl::PlainError;
use mailbus_sasl::PlaintextAuth;
use mailbus_tls::{MaybeTls, ServerTls};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use render::nz;

/// The hierarchy separator the store uses and IMAP clients see.
const DELIMITER: char = '/';

/// How long a login waits for NATS to confirm the session's event subscription (normally a round trip).
const EVENTS_CONFIRMED: Duration = Duration::from_secs(5);

/// Largest gRPC reply a session accepts (SELECT of a very large mailbox lists every UID).
const MAX_REPLY: usize = 256 * 1024 * 1024;

/// Before login, the most a command may hold, literals included: LOGIN, AUTHENTICATE PLAIN and ID need
/// far less. A client that sends more is told BYE and closed, so an address that has no account cannot
/// make a session hold more than this (and the read buffer) in memory.
const PRE_LOGIN_COMMAND: u32 = 16 * 1024;
/// Before login, the largest literal that gets a `+`; a larger one is refused with BAD before it is sent.
const PRE_LOGIN_LITERAL: u32 = 8 * 1024;

/// How the framer bounds what it buffers: tightly before login, up to APPENDLIMIT after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    PreLogin,
    LoggedIn,
}

pub struct ImapContext {
    pub mailbox: MailboxClient<TracedChannel>,
    pub directory: DirectoryClient<TracedChannel>,
    pub nats: async_nats::Client,
    pub names: Names,
    pub tls: ServerTls,
    /// Implicit TLS and STARTTLS alike, never past the login deadline.
    pub tls_handshake_timeout: Duration,
    pub hostname: String,
    pub plaintext_auth: PlaintextAuth,
    pub max_auth_failures: usize,
    /// The autologout timer: RFC 9051 §5.4 asks for at least 30 minutes, IDLE included (RFC 2177).
    pub idle_timeout: Duration,
    /// From connecting to a successful login, TLS handshakes included.
    pub login_timeout: Duration,
    pub throttle: mailbus_jetstream::LoginThrottle,
    pub max_message_size: u64,
    pub commands: Family<Vec<(String, String)>, Counter>,
    pub metrics: crate::metrics::SessionMetrics,
    /// Sessions one account may have open from one address in this process (Dovecot's
    /// `mail_max_userip_connections`).
    pub max_user_connections: usize,
    pub user_connections: std::sync::Mutex<std::collections::HashMap<(AccountId, std::net::IpAddr), usize>>,
}

/// One of an account's connection slots from one address; given back when the session ends.
struct UserSlot {
    ctx: Arc<ImapContext>,
    key: (AccountId, std::net::IpAddr),
}

impl UserSlot {
    fn take(ctx: &Arc<ImapContext>, account_id: AccountId, ip: std::net::IpAddr) -> Option<UserSlot> {
        let mut open = ctx.user_connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry((account_id, ip)).or_default();
        if *count >= ctx.max_user_connections {
            return None;
        }
        *count += 1;
        Some(UserSlot { ctx: ctx.clone(), key: (account_id, ip) })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self.ctx.user_connections.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl ImapContext {
    pub fn new_clients(channel: TracedChannel) -> (MailboxClient<TracedChannel>, DirectoryClient<TracedChannel>) {
        (MailboxClient::new(channel.clone()).max_decoding_message_size(MAX_REPLY), DirectoryClient::new(channel))
    }
}

/// A logged-in account.
struct Login {
    account_id: AccountId,
    address: String,
    /// ENABLE CONDSTORE, or a command that implies it (RFC 7162 §3.1).
    condstore: bool,
    /// ENABLE QRESYNC (RFC 7162 §3.2): expunges are reported as VANISHED.
    qresync: bool,
    /// ENABLE UTF8=ACCEPT (RFC 6855).
    utf8: bool,
    /// ENABLE IMAP4rev2 (RFC 9051): UTF-8 names, ESEARCH replies to SEARCH, no \Recent.
    rev2: bool,
    /// None after NATS dropped the subscription, until it is made again.
    events: Option<async_nats::Subscriber>,
    _slot: UserSlot,
}

impl Selected {
    /// The mailbox's HIGHESTMODSEQ as a call this session made found it. A change the session has not
    /// caught up with makes it out of date at once, though its event may not have arrived yet (the client
    /// can know of it: another session's command completed before this one began); its own changes do
    /// not. MODSEQs are dense (each change takes the next), so every one up to `seen` is accounted for.
    fn saw_modseq(&mut self, seen: u64) {
        if (self.highest_modseq + 1..=seen).any(|m| !self.own_modseqs.contains(&m)) {
            self.dirty = true;
        }
    }

    /// RENAME keeps UIDVALIDITY: a session with the mailbox (or one below it) selected keeps it, by its
    /// new name.
    fn follow_rename(&mut self, from: &str, to: &str) {
        if self.name == from {
            self.name = to.to_owned();
        } else if let Some(rest) = self.name.strip_prefix(from).filter(|rest| rest.starts_with(DELIMITER)) {
            self.name = format!("{to}{rest}");
        }
    }
}

/// The selected mailbox, as this session has told the client about it.
struct Selected {
    name: String,
    read_only: bool,
    uidvalidity: u32,
    uids: Vec<u32>,
    highest_modseq: u64,
    /// An event said the mailbox changed since the session last looked.
    dirty: bool,
    /// MODSEQs of flag changes and expunges this session made and already told its client about: their
    /// events do not make the session out of date. Cleared whenever it catches up.
    own_modseqs: std::collections::BTreeSet<u64>,
    /// The last SEARCH RETURN (SAVE) result, by UID, for `$` (RFC 5182).
    saved: Vec<u32>,
    /// Expunged elsewhere, not yet announced (EXPUNGE must wait for a command that allows it).
    vanished: std::collections::BTreeSet<u32>,
    /// The keywords the client has been told of in FLAGS, by their lowercase spelling (keywords match
    /// case-insensitively).
    keywords: std::collections::BTreeMap<String, String>,
    /// The messages that are `\Recent` to this session (RFC 3501 §2.3.2).
    recent: recent::Recent,
}

enum State {
    NotAuthenticated { failures: usize },
    Authenticated(Login),
    Selected(Login, Selected),
}

impl State {
    fn login(&self) -> Option<&Login> {
        match self {
            State::Authenticated(login) | State::Selected(login, _) => Some(login),
            State::NotAuthenticated { .. } => None,
        }
    }

    fn login_mut(&mut self) -> Option<&mut Login> {
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

/// When a command's untagged updates may include EXPUNGE (RFC 9051 §7.4.1).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Full,
    NoExpunge,
}

enum Flow {
    Continue,
    Close,
}

#[derive(Debug)]
enum End {
    Closed,
    Read(ReadError),
    Io(std::io::Error),
}

pub async fn handle<IO>(
    io: IO,
    peer: SocketAddr,
    implicit_tls: bool,
    ctx: Arc<ImapContext>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span = tracing::info_span!("imap.session", network.peer.address = %peer.ip(), account = tracing::field::Empty);
    let _active = ctx.metrics.open();
    let session_span = span.clone();
    async {
        let login_deadline = tokio::time::Instant::now() + ctx.login_timeout;
        let handshake = ctx.tls_handshake_timeout.min(ctx.login_timeout);
        let Some((stream, _)) = wire::open(io, implicit_tls.then_some(&ctx.tls), handshake, peer).await else {
            return;
        };
        let mut conn = Connection {
            peer,
            wire: Wire::new(stream),
            server: new_server(&ctx, None, Framing::PreLogin),
            framing: Framing::PreLogin,
            fed: 0,
            meter: Default::default(),
            tls: implicit_tls,
            plaintext_allowed: ctx.plaintext_auth.allows(peer.ip()),
            state: State::NotAuthenticated { failures: 0 },
            auth_tag: None,
            idle_tag: None,
            pending: Default::default(),
            extended: None,
            deadline: login_deadline,
            session_span,
            ctx,
        };
        let greeting = conn.capabilities();
        conn.server = new_server(&conn.ctx, Some(greeting), Framing::PreLogin);
        match conn.run(&shutdown).await {
            End::Io(error) | End::Read(ReadError::Io(error)) => tracing::info!(%peer, %error, "imap connection failed"),
            other => tracing::debug!(%peer, end = ?other, "imap connection closed"),
        }
    }
    .instrument(span)
    .await
}

/// A framer for a new connection (with its greeting) or for one that has just started TLS (whose
/// greeting was already sent, so the new one is taken out unsent).
fn new_server(ctx: &ImapContext, capabilities: Option<Vec1<Capability<'static>>>, framing: Framing) -> Server {
    let mut options = Options::default();
    options.crlf_relaxed = true;
    match framing {
        Framing::PreLogin => {
            options.max_literal_size = PRE_LOGIN_LITERAL;
            options.max_command_size = PRE_LOGIN_COMMAND;
            let _ = options.set_literal_reject_text("literal too large before login".into());
        }
        Framing::LoggedIn => {
            let limit = u32::try_from(ctx.max_message_size).unwrap_or(u32::MAX - 65536);
            options.max_literal_size = limit;
            options.max_command_size = limit.saturating_add(64 * 1024);
            let _ = options.set_literal_reject_text("[TOOBIG] literal larger than APPENDLIMIT".into());
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

/// RFC 3501 §7.2.1 spells the capability `IMAP4rev1`; imap-codec writes `IMAP4REV1`, and case-sensitive
/// scanners (testssl's STARTTLS probe) look for the RFC's spelling. Rewrites it, in place and at the same
/// length, in a response that is a capability list (the greeting, `* CAPABILITY`, a login's
/// `OK [CAPABILITY`), where it always comes first; no other response is touched, so message data never is.
fn spell_imap4rev1(frame: &mut [u8]) {
    let Some(space) = frame.iter().position(|&b| b == b' ') else { return };
    let rest = &frame[space + 1..];
    let at = if rest.starts_with(b"CAPABILITY IMAP4REV1") {
        "CAPABILITY ".len()
    } else if rest.starts_with(b"OK [CAPABILITY IMAP4REV1") {
        "OK [CAPABILITY ".len()
    } else {
        return;
    };
    let start = space + 1 + at;
    frame[start..start + 9].copy_from_slice(b"IMAP4rev1");
}

fn text(message: &str) -> String {
    let clean: String = message.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(200).collect();
    if clean.trim().is_empty() { "failed".into() } else { clean }
}

fn ok(tag: Tag<'static>, code: Option<Code<'static>>, message: &str) -> Status<'static> {
    Status::ok(Some(tag), code, text(message)).expect("ASCII text")
}

fn no(tag: Tag<'static>, code: Option<Code<'static>>, message: &str) -> Status<'static> {
    Status::no(Some(tag), code, text(message)).expect("ASCII text")
}

fn bad(tag: Option<Tag<'static>>, message: &str) -> Status<'static> {
    Status::bad(tag, None, text(message)).expect("ASCII text")
}

fn other_code(code: &str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(code.as_bytes().to_vec()))
}

/// RFC 8474 §4.1's `MAILBOXID (m12)`, JMAP's id of the same mailbox.
fn mailbox_id_code(id: i64) -> Code<'static> {
    other_code(&format!("MAILBOXID (m{id})"))
}

fn atom(text: &str) -> Atom<'static> {
    Atom::try_from(text.to_owned()).expect("a valid atom")
}

/// A failed call on the mailbox role, as the NO a client understands (RFC 5530 response codes).
/// SEARCH and THREAD take the charsets every string of ours is in.
fn searchable_charset(charset: &Charset<'_>) -> bool {
    let name = charset.as_ref();
    name.eq_ignore_ascii_case("UTF-8") || name.eq_ignore_ascii_case("US-ASCII")
}

/// `NO [BADCHARSET (UTF-8 US-ASCII)]` (RFC 9051 §7.1).
fn bad_charset(tag: Tag<'static>) -> Status<'static> {
    let allowed = ["UTF-8", "US-ASCII"].map(|c| Charset::try_from(c).expect("valid")).to_vec();
    no(tag, Some(Code::BadCharset { allowed }), "unsupported charset")
}

fn refusal(tag: Tag<'static>, status: &tonic::Status) -> Status<'static> {
    use mailbus_proto::v1::Reason;
    use tonic::Code as G;
    let message = status.message();
    let code = match (mailbus_proto::refusal::reason(status), status.code()) {
        (Reason::HasChildren, _) => Some(other_code("HASCHILDREN")),
        (Reason::Nonexistent, _) | (_, G::NotFound) => Some(other_code("NONEXISTENT")),
        (Reason::AlreadyExists, _) | (_, G::AlreadyExists) => Some(other_code("ALREADYEXISTS")),
        (Reason::OverQuotaTemporary | Reason::OverQuotaPermanent, _) | (_, G::ResourceExhausted) => {
            Some(Code::OverQuota)
        }
        (_, G::FailedPrecondition | G::InvalidArgument) => Some(other_code("CANNOT")),
        _ => Some(other_code("UNAVAILABLE")),
    };
    let message = if matches!(status.code(), G::Unavailable | G::Internal | G::Unknown | G::DeadlineExceeded) {
        "the mail store is unavailable, try again"
    } else {
        message
    };
    no(tag, code, message)
}

fn encode(status: Status<'static>) -> Vec<u8> {
    ResponseCodec::default().encode(&Response::Status(status)).dump()
}

/// A mailbox name from the client: modified UTF-7, or (after ENABLE UTF8=ACCEPT, RFC 6855 §3) UTF-8.
fn mailbox_name_in(mailbox: &Mailbox<'_>, utf8: bool) -> Option<String> {
    match mailbox {
        Mailbox::Inbox => Some("INBOX".into()),
        Mailbox::Other(other) => {
            let name = std::str::from_utf8(other.inner().as_ref()).ok()?;
            if utf8 { Some(name.to_owned()) } else { render::from_utf7(name) }
        }
    }
}

/// A mailbox name for the client, in the form it reads.
fn wire_mailbox_in(name: &str, utf8: bool) -> Mailbox<'static> {
    use imap_types::core::{AString, IString};
    use imap_types::extensions::utf8::QuotedUtf8;
    use imap_types::mailbox::MailboxOther;
    if utf8 && !name.is_ascii() {
        // A quoted UTF-8 string, as RFC 6855 lets the server send once the client enabled it.
        let quoted = QuotedUtf8::try_from(name.to_owned()).ok().map(IString::QuotedUtf8).map(AString::String);
        if let Some(other) = quoted.and_then(|q| MailboxOther::try_from(q).ok()) {
            return Mailbox::Other(other);
        }
    }
    let name = if utf8 { name.to_owned() } else { render::to_utf7(name) };
    Mailbox::try_from(name).unwrap_or(Mailbox::Inbox)
}

/// RFC 3501 §7.2.6: a keyword the client has not been told of in a FLAGS response is announced, with
/// FLAGS and PERMANENTFLAGS, before a FETCH carries it; clients that keep the mailbox's list drop a
/// keyword they were never told of.
fn announce_new_keywords(selected: &mut Selected, flags: &[String], server: &mut Server) {
    let mut new = false;
    for keyword in flags.iter().filter(|f| !f.starts_with('\\')) {
        if let std::collections::btree_map::Entry::Vacant(entry) = selected.keywords.entry(keyword.to_ascii_lowercase())
        {
            entry.insert(keyword.clone());
            new = true;
        }
    }
    if !new {
        return;
    }
    let mut flags = vec![Flag::Answered, Flag::Flagged, Flag::Deleted, Flag::Seen, Flag::Draft];
    flags.extend(
        selected.keywords.values().filter_map(|k| Flag::try_from(k.as_str()).ok().map(IntoStatic::into_static)),
    );
    server.enqueue_data(Data::Flags(flags.clone()));
    if !selected.read_only {
        let permanent = flags.into_iter().map(FlagPerm::Flag).chain([FlagPerm::Asterisk]).collect();
        let status = Status::ok(None, Some(Code::PermanentFlags(permanent)), "flags permitted").expect("ASCII");
        server.enqueue_status(status);
    }
}

/// A message's flags as FETCH FLAGS gives them, with `\Recent` when it is recent to the session.
fn flags_of(names: &[String], recent: bool) -> Vec<FlagFetch<'static>> {
    let flags = names.iter().filter_map(|f| Flag::try_from(f.as_str()).ok()).map(|f| FlagFetch::Flag(f.into_static()));
    flags.chain(recent.then_some(FlagFetch::Recent)).collect()
}

struct Connection<IO> {
    peer: SocketAddr,
    wire: Wire<MaybeTls<IO>>,
    server: Server,
    /// The limits `server` was made with; replaced by a logged-in framer once the login is answered.
    framing: Framing,
    /// Before login: bytes handed to the framer since it last produced a command.
    fed: usize,
    /// After login: the text of the command being received, outside its literals.
    meter: line_meter::LineMeter,
    ctx: Arc<ImapContext>,
    tls: bool,
    plaintext_allowed: bool,
    state: State,
    /// Inside AUTHENTICATE: its tag.
    auth_tag: Option<Tag<'static>>,
    /// Inside IDLE: its tag.
    idle_tag: Option<Tag<'static>>,
    /// The ESEARCH or LIST-EXTENDED options of the command being answered.
    extended: Option<render::Extended>,
    /// What the framer produced while a command was being answered, for `run` to handle next.
    pending: std::collections::VecDeque<Result<Event, FrameError>>,
    /// When the session ends if nothing more happens: before login, the login deadline, which input does
    /// not move; after, the idle timeout from the last input that completed a line (a client dribbling one
    /// line forever is logged out as an idle one is).
    deadline: tokio::time::Instant,
    /// `imap.session`, which names the account once logged in.
    session_span: tracing::Span,
}

enum Woken {
    Input,
    Event(async_nats::Message),
    EventsEnded,
    Resubscribe,
}

impl<IO> Connection<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// ENABLE UTF8=ACCEPT or IMAP4rev2 was given: mailbox names are UTF-8 both ways.
    fn utf8(&self) -> bool {
        self.state.login().is_some_and(|l| l.utf8 || l.rev2)
    }

    fn rev2(&self) -> bool {
        self.state.login().is_some_and(|l| l.rev2)
    }

    fn name_of(&self, mailbox: &Mailbox<'_>) -> Option<String> {
        mailbox_name_in(mailbox, self.utf8())
    }

    fn capabilities(&self) -> Vec1<Capability<'static>> {
        // IMAP4rev1 first: `spell_imap4rev1` finds it there.
        let mut caps = vec![Capability::Imap4Rev1, Capability::LiteralPlus, Capability::SaslIr, Capability::Idle];
        caps.push(Capability::from(atom("IMAP4rev2")));
        caps.extend(["ID", "ENABLE", "NAMESPACE"].map(|c| Capability::from(atom(c))));
        match &self.state {
            State::NotAuthenticated { .. } => {
                if !self.tls {
                    caps.push(Capability::StartTls);
                }
                if self.tls || self.plaintext_allowed {
                    caps.push(Capability::Auth(AuthMechanism::Plain));
                } else {
                    caps.push(Capability::LoginDisabled);
                }
            }
            _ => {
                caps.extend([Capability::UidPlus, Capability::Move, Capability::Unselect, Capability::Binary]);
                caps.extend(
                    [
                        "CHILDREN",
                        "SPECIAL-USE",
                        "CONDSTORE",
                        "QRESYNC",
                        "STATUS=SIZE",
                        "UTF8=ACCEPT",
                        "ESEARCH",
                        "LIST-EXTENDED",
                        "LIST-STATUS",
                        "OBJECTID",
                        "THREAD=REFERENCES",
                        "THREAD=ORDEREDSUBJECT",
                        "SORT",
                        "SORT=DISPLAY",
                        "ESORT",
                        "UNAUTHENTICATE",
                        "PREVIEW",
                        "CREATE-SPECIAL-USE",
                        "WITHIN",
                    ]
                    .map(|c| Capability::from(atom(c))),
                );
                caps.extend(["QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"].map(|c| Capability::from(atom(c))));
                caps.push(Capability::from(atom(&format!("APPENDLIMIT={}", self.ctx.max_message_size))));
            }
        }
        Vec1::try_from(caps).expect("never empty")
    }

    async fn run(&mut self, shutdown: &CancellationToken) -> End {
        loop {
            let next = match self.pending.pop_front() {
                Some(Ok(event)) => Ok(event),
                Some(Err(error)) => Err(Interrupt::Error(error)),
                None => self.server.next(),
            };
            match next {
                Ok(event) => {
                    if !matches!(event, Event::GreetingSent { .. } | Event::ResponseSent { .. }) {
                        self.fed = 0;
                    }
                    if let Flow::Close = self.event(event).await {
                        let _ = self.wire.flush().await;
                        return End::Closed;
                    }
                }
                Err(Interrupt::Io(Io::Output(mut bytes))) => {
                    spell_imap4rev1(&mut bytes);
                    self.wire.output.extend_from_slice(&bytes);
                    if let Err(error) = self.wire.flush_if_large().await {
                        return End::Io(error);
                    }
                }
                Err(Interrupt::Io(Io::NeedMoreInput)) => {
                    if let Err(error) = self.wire.flush().await {
                        return End::Io(error);
                    }
                    if self.framing == Framing::PreLogin && self.state.login().is_some() {
                        // The login is answered and the framer has consumed all it was given (it is fed
                        // one line at a time before login): what follows gets the logged-in limits.
                        self.server = new_server(&self.ctx, None, Framing::LoggedIn);
                        self.framing = Framing::LoggedIn;
                    }
                    if !self.wire.input.is_empty() {
                        if let Flow::Close = self.feed().await {
                            return End::Closed;
                        }
                        continue;
                    }
                    match self.wait(shutdown).await {
                        Ok(Woken::Input) => {
                            if self.state.login().is_some() && self.wire.input.contains(&b'\n') {
                                self.deadline = tokio::time::Instant::now() + self.ctx.idle_timeout;
                            }
                        }
                        Ok(Woken::Event(message)) => {
                            if let Flow::Close = self.on_event(message).await {
                                let _ = self.wire.flush().await;
                                return End::Closed;
                            }
                        }
                        Ok(Woken::EventsEnded) => {
                            if let Some(login) = self.state.login_mut() {
                                login.events = None;
                            }
                        }
                        Ok(Woken::Resubscribe) => self.resubscribe().await,
                        Err(error) => {
                            let farewell = match error {
                                ReadError::Timeout if self.state.login().is_none() => Some("login timed out"),
                                ReadError::Timeout => Some("autologout: idle for too long"),
                                ReadError::Shutdown => Some("server shutting down"),
                                _ => None,
                            };
                            if let Some(why) = farewell {
                                let bye = Status::bye(Some(other_code("UNAVAILABLE")), why).expect("ASCII text");
                                self.wire.last_words(&encode(bye)).await;
                            }
                            return End::Read(error);
                        }
                    }
                }
                Err(Interrupt::Error(error)) => {
                    self.fed = 0;
                    if let Flow::Close = self.malformed(error).await {
                        let _ = self.wire.flush().await;
                        return End::Closed;
                    }
                }
            }
        }
    }

    /// Hands the framer the input it may have. Logged in, all of it. Before login, up to the next line end
    /// only, so that when the login is answered the framer holds nothing more and can be replaced; and a
    /// command that grows past [`PRE_LOGIN_COMMAND`] ends the session instead of growing a buffer.
    async fn feed(&mut self) -> Flow {
        if self.framing == Framing::LoggedIn {
            if self.meter.take(&self.wire.input).is_err() {
                tracing::info!(peer = %self.peer, "command text over 64 KiB; closing");
                let bye = Status::bye(Some(other_code("LIMIT")), "command line too long").expect("ASCII text");
                self.wire.last_words(&encode(bye)).await;
                return Flow::Close;
            }
            self.server.enqueue_input(&self.wire.input);
            self.wire.input.clear();
            return Flow::Continue;
        }
        let end = self.wire.input.iter().position(|&b| b == b'\n').map_or(self.wire.input.len(), |i| i + 1);
        if self.fed + end > PRE_LOGIN_COMMAND as usize {
            tracing::info!(peer = %self.peer, "command too long before login; closing");
            let bye = Status::bye(Some(other_code("LIMIT")), "command too long before login").expect("ASCII text");
            self.wire.last_words(&encode(bye)).await;
            return Flow::Close;
        }
        self.server.enqueue_input(&self.wire.input[..end]);
        self.wire.consume(end);
        self.fed += end;
        Flow::Continue
    }

    /// Writes out what the framer has queued so far (a long FETCH goes out as it is read, not all at the
    /// end). A command the client pipelined meanwhile is kept for `run`.
    async fn pump(&mut self) -> std::io::Result<()> {
        loop {
            match self.server.next() {
                Err(Interrupt::Io(Io::Output(mut bytes))) => {
                    spell_imap4rev1(&mut bytes);
                    self.wire.output.extend_from_slice(&bytes);
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
        self.wire.output.extend_from_slice(line.as_bytes());
    }

    /// The next input, or a mailbox event for this account, whichever comes first. The autologout clock
    /// runs from the client's last input: events do not keep a silent session alive.
    async fn wait(&mut self, shutdown: &CancellationToken) -> Result<Woken, ReadError> {
        let timeout = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        let login = self.state.login_mut();
        let event = async {
            match login {
                Some(Login { events: Some(events), .. }) => match events.next().await {
                    Some(message) => Woken::Event(message),
                    None => Woken::EventsEnded,
                },
                Some(_) => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Woken::Resubscribe
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = self.wire.read_more(timeout, shutdown) => read.map(|()| Woken::Input),
            woken = event => Ok(woken),
        }
    }

    /// After the event subscription was lost (NATS restarted): subscribe again, and look for what was
    /// missed meanwhile.
    async fn resubscribe(&mut self) {
        let Some(login) = self.state.login_mut() else { return };
        let subject = self.ctx.names.mailbox_events(login.account_id.get());
        if let Ok(events) = mailbus_jetstream::subscribe_confirmed(&self.ctx.nats, subject, EVENTS_CONFIRMED).await {
            login.events = Some(events);
            if let Some(selected) = self.state.selected() {
                selected.dirty = true;
            }
        }
    }

    /// A mailbox event: the selected mailbox is out of date; during IDLE, tell the client at once.
    async fn on_event(&mut self, message: async_nats::Message) -> Flow {
        if mailbus_jetstream::is_probe(&message) {
            return Flow::Continue;
        }
        let Ok(event) = <pb::MailboxEvent as prost::Message>::decode(message.payload) else { return Flow::Continue };
        if let Some(selected) = self.state.selected() {
            let kind = event.kind();
            let own = matches!(kind, pb::MailboxEventKind::FlagsChanged | pb::MailboxEventKind::Expunged)
                && selected.own_modseqs.contains(&event.modseq);
            if kind == pb::MailboxEventKind::Renamed {
                selected.follow_rename(&event.mailbox, &event.renamed_to);
            } else if event.mailbox == selected.name && !own {
                selected.dirty = true;
            }
        }
        if self.idle_tag.is_some() { self.sync(Sync::Full, false).await } else { Flow::Continue }
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
        if let Some(tag) = self.auth_tag.take() {
            self.command_metric("malformed");
            // A continuation line that is not base64 ends the exchange; imap-next waits for us to say so.
            let _ = self.server.authenticate_finish(bad(Some(tag), "the SASL response is not base64"));
            return Flow::Continue;
        }
        if self.idle_tag.is_some() {
            self.command_metric("malformed");
            self.server.enqueue_status(bad(None, "expected DONE"));
            return Flow::Continue;
        }
        // RFC 5182 `$`: the saved search result, written out as the set it stands for.
        if let FrameError::MalformedMessage { .. } = &error
            && let Some(selected) = self.state.selected()
            && let Some(line) = render::substitute_saved(bytes, &selected.saved, &selected.uids)
        {
            let tag = bytes.iter().position(|&b| b == b' ').and_then(|end| Tag::try_from(bytes[..end].to_vec()).ok());
            return match line {
                None => {
                    // `$` is empty: the command acts on no message.
                    self.server.enqueue_status(Status::ok(tag, None, "no messages in $").expect("ASCII"));
                    Flow::Continue
                }
                Some(line) => {
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
            && bytes.len() as u64 <= self.ctx.max_message_size.saturating_add(64 * 1024)
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
        let flow = self.command(tag, body).instrument(span.clone()).await;
        self.ctx.metrics.observe(name, started);
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

    fn command_metric(&self, name: &str) {
        self.ctx.commands.get_or_create(&vec![("command".into(), name.to_ascii_lowercase())]).inc();
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
                let tag = self.auth_tag.take().expect("imap-next reports data only inside AUTHENTICATE");
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
                self.idle_tag = Some(tag);
                self.sync(Sync::Full, true).await
            }
            Event::IdleDoneReceived => {
                if let Some(tag) = self.idle_tag.take() {
                    self.server.enqueue_status(ok(tag, None, "IDLE terminated"));
                }
                Flow::Continue
            }
        }
    }

    async fn authenticate_start(&mut self, command: CommandAuthenticate) -> Flow {
        let CommandAuthenticate { tag, mechanism, initial_response } = command;
        let refused = match &self.state {
            State::NotAuthenticated { .. } if !self.tls && !self.plaintext_allowed => {
                Some(no(tag.clone(), Some(other_code("PRIVACYREQUIRED")), "use STARTTLS first"))
            }
            State::NotAuthenticated { .. } if mechanism != AuthMechanism::Plain => {
                Some(no(tag.clone(), Some(other_code("CANNOT")), "only AUTHENTICATE PLAIN is offered"))
            }
            State::NotAuthenticated { .. } => None,
            _ => Some(bad(Some(tag.clone()), "already authenticated")),
        };
        if let Some(status) = refused {
            let _ = self.server.authenticate_finish(status);
            return Flow::Continue;
        }
        match initial_response {
            Some(response) => match self.plain(tag, response.declassify()).await {
                Ok(status) => {
                    let _ = self.server.authenticate_finish(status);
                    Flow::Continue
                }
                Err(flow) => flow,
            },
            None => {
                let _ = self.server.authenticate_continue(CommandContinuationRequest::base64(Vec::<u8>::new()));
                self.auth_tag = Some(tag);
                Flow::Continue
            }
        }
    }

    /// SASL PLAIN (RFC 4616), as SMTP and POP3 read it: an authzid other than the user is refused.
    async fn plain(&mut self, tag: Tag<'static>, response: &[u8]) -> Result<Status<'static>, Flow> {
        match mailbus_sasl::parse_plain_checked(response) {
            Ok(plain) => self.log_in(tag, &plain.username, plain.password.expose()).await,
            Err(PlainError::Malformed) => Ok(bad(Some(tag), "malformed PLAIN response")),
            Err(PlainError::ActsForAnother) => {
                Ok(no(tag, Some(other_code("AUTHORIZATIONFAILED")), "cannot act as another user"))
            }
        }
    }

    async fn log_in(&mut self, tag: Tag<'static>, user: &str, password: &str) -> Result<Status<'static>, Flow> {
        let client = self.peer.ip();
        if self.ctx.throttle.verdict(client).await == mailbus_jetstream::Verdict::Refuse {
            self.ctx.metrics.throttled();
            return Ok(no(tag, Some(other_code("UNAVAILABLE")), "too many failed logins from your address, try later"));
        }
        let request = pb::AuthenticateRequest { username: user.to_owned(), password: password.to_owned() };
        let reply = match self.ctx.directory.clone().authenticate(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => return Ok(refusal(tag, &status)),
        };
        if !reply.ok {
            let State::NotAuthenticated { failures } = &mut self.state else {
                return Ok(bad(Some(tag), "already authenticated"));
            };
            *failures += 1;
            let failures = *failures;
            // A delay that grows with the failures of this address and account across sessions, then the
            // door once this session has had its share.
            self.ctx.metrics.auth_failed();
            tokio::time::sleep(self.ctx.throttle.failed("imap", client, user).await).await;
            if failures >= self.ctx.max_auth_failures {
                self.server.enqueue_status(no(tag, Some(other_code("AUTHENTICATIONFAILED")), "authentication failed"));
                self.server.enqueue_status(Status::bye(None, "too many authentication failures").expect("ASCII"));
                self.drain().await;
                return Err(Flow::Close);
            }
            return Ok(no(tag, Some(other_code("AUTHENTICATIONFAILED")), "authentication failed"));
        }
        let Some(slot) = UserSlot::take(&self.ctx, reply.account_id.into(), self.peer.ip()) else {
            return Ok(no(tag, Some(other_code("LIMIT")), "too many connections for this account from this address"));
        };
        // Confirmed before the login is answered: a change committed after the client's SELECT reads the
        // mailbox must reach this session, or it would not report it until something else changes.
        let subject = self.ctx.names.mailbox_events(reply.account_id);
        let events = match mailbus_jetstream::subscribe_confirmed(&self.ctx.nats, subject, EVENTS_CONFIRMED).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(%error, "cannot subscribe to mailbox events");
                return Ok(no(tag, Some(other_code("UNAVAILABLE")), "try again later"));
            }
        };
        self.ctx.throttle.succeeded(user).await;
        self.deadline = tokio::time::Instant::now() + self.ctx.idle_timeout;
        self.session_span.record("account", reply.account_address.as_str());
        self.state = State::Authenticated(Login {
            account_id: reply.account_id.into(),
            address: reply.account_address.clone(),
            condstore: false,
            qresync: false,
            utf8: false,
            rev2: false,
            events: Some(events),
            _slot: slot,
        });
        Ok(ok(tag, Some(Code::Capability(self.capabilities())), "logged in"))
    }

    /// RFC 7162 §3.1: a command other than SELECT or ENABLE that turns CONDSTORE on (FETCH or SEARCH with
    /// MODSEQ, STORE with UNCHANGEDSINCE) is answered with the selected mailbox's HIGHESTMODSEQ first, the
    /// first time, since the client never heard it as a CONDSTORE client.
    fn enable_condstore(&mut self) {
        let Some(login) = self.state.login_mut() else { return };
        if std::mem::replace(&mut login.condstore, true) {
            return;
        }
        if let Some(modseq) = self.state.selected().and_then(|s| NonZeroU64::new(s.highest_modseq)) {
            let status = Status::ok(None, Some(Code::HighestModSeq(modseq)), "highest").expect("ASCII");
            self.server.enqueue_status(status);
        }
    }

    /// Moves every queued response into the output buffer (for a session about to close).
    async fn drain(&mut self) {
        loop {
            match self.server.next() {
                Err(Interrupt::Io(Io::Output(mut bytes))) => {
                    spell_imap4rev1(&mut bytes);
                    self.wire.output.extend_from_slice(&bytes)
                }
                Ok(Event::ResponseSent { .. } | Event::GreetingSent { .. }) => {}
                _ => break,
            }
        }
        let _ = self.wire.flush().await;
    }

    async fn command(&mut self, tag: Tag<'static>, body: CommandBody<'static>) -> Flow {
        let account_id = self.state.login().map(|l| l.account_id);
        let selected = matches!(self.state, State::Selected(..));
        let name = body.name();
        // RFC 9051 §7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH by message number.
        let by_number = matches!(
            &body,
            CommandBody::Fetch { uid: false, .. }
                | CommandBody::Store { uid: false, .. }
                | CommandBody::Search { uid: false, .. }
                | CommandBody::Thread { uid: false, .. }
                | CommandBody::Sort { uid: false, .. }
        );
        let status = match (body, account_id) {
            (CommandBody::Capability, _) => {
                self.server.enqueue_data(Data::Capability(self.capabilities()));
                ok(tag, None, "CAPABILITY completed")
            }
            (CommandBody::Noop | CommandBody::Check, _) => {
                if let Flow::Close = self.sync(Sync::Full, true).await {
                    return Flow::Close;
                }
                ok(tag, None, &format!("{name} completed"))
            }
            (CommandBody::Logout, _) => {
                self.server.enqueue_status(Status::bye(None, "logging out").expect("ASCII"));
                self.server.enqueue_status(ok(tag, None, "LOGOUT completed"));
                self.drain().await;
                return Flow::Close;
            }
            (CommandBody::Id { .. }, _) => {
                let field = |k: &str, v: &str| (render::istring(k), render::nstring(Some(v)));
                let parameters = vec![field("name", "mailbus"), field("version", env!("CARGO_PKG_VERSION"))];
                self.server.enqueue_data(Data::Id { parameters: Some(parameters) });
                ok(tag, None, "ID completed")
            }
            (CommandBody::StartTLS, None) if !self.tls => return self.start_tls(tag).await,
            (CommandBody::StartTLS, _) => bad(Some(tag), "TLS is already active"),
            (CommandBody::Login { username, password }, None) => {
                if !self.tls && !self.plaintext_allowed {
                    no(tag, Some(other_code("PRIVACYREQUIRED")), "LOGIN is disabled until STARTTLS")
                } else {
                    let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                    let password = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                    match self.log_in(tag, &user, &password).await {
                        Ok(status) => status,
                        Err(flow) => return flow,
                    }
                }
            }
            (CommandBody::Login { .. }, Some(_)) => bad(Some(tag), "already authenticated"),
            (_, None) => bad(Some(tag), "log in first"),
            (CommandBody::Enable { .. }, Some(_)) if selected => {
                bad(Some(tag), "ENABLE is for the authenticated state (RFC 5161)")
            }
            (CommandBody::Enable { capabilities }, Some(_)) => {
                let mut enabled = Vec::new();
                for capability in capabilities.as_ref() {
                    let name = capability.to_string();
                    if name.eq_ignore_ascii_case("UTF8=ACCEPT")
                        && let Some(login) = self.state.login_mut()
                    {
                        login.utf8 = true;
                        enabled.push(capability.clone());
                        continue;
                    }
                    if name.eq_ignore_ascii_case("IMAP4REV2")
                        && let Some(login) = self.state.login_mut()
                    {
                        login.rev2 = true;
                        enabled.push(capability.clone());
                        continue;
                    }
                    let qresync = name.eq_ignore_ascii_case("QRESYNC");
                    if (qresync || name.eq_ignore_ascii_case("CONDSTORE"))
                        && let Some(login) = self.state.login_mut()
                    {
                        // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
                        login.condstore = true;
                        login.qresync |= qresync;
                        enabled.push(capability.clone());
                    }
                }
                self.server.enqueue_data(Data::Enabled { capabilities: enabled });
                ok(tag, None, "ENABLE completed")
            }
            (CommandBody::Namespace, Some(_)) => {
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
            (CommandBody::Select { mailbox, parameters } | CommandBody::Examine { mailbox, parameters }, Some(id))
                if parameters.iter().any(|p| matches!(p, SelectParameter::QResync { .. }))
                    && !self.state.login().is_some_and(|l| l.qresync) =>
            {
                let _ = (mailbox, id);
                bad(Some(tag), "ENABLE QRESYNC first")
            }
            (CommandBody::Select { mailbox, parameters }, Some(id)) => {
                self.select(tag, id, &mailbox, false, &parameters).await
            }
            (CommandBody::Examine { mailbox, parameters }, Some(id)) => {
                self.select(tag, id, &mailbox, true, &parameters).await
            }
            (CommandBody::Create { mailbox }, Some(id)) => self.create(tag, id, &mailbox).await,
            (CommandBody::Delete { mailbox }, Some(id)) => self.delete(tag, id, &mailbox).await,
            (CommandBody::Rename { from, to }, Some(id)) => self.rename(tag, id, &from, &to).await,
            (CommandBody::Subscribe { mailbox }, Some(id)) => self.subscribe(tag, id, &mailbox, true).await,
            (CommandBody::Unsubscribe { mailbox }, Some(id)) => self.subscribe(tag, id, &mailbox, false).await,
            (CommandBody::List { reference, mailbox_wildcard }, Some(id)) => {
                self.list(tag, id, &reference, &mailbox_wildcard, false).await
            }
            (CommandBody::Lsub { reference, mailbox_wildcard }, Some(id)) => {
                self.list(tag, id, &reference, &mailbox_wildcard, true).await
            }
            (CommandBody::Status { mailbox, item_names }, Some(id)) => {
                self.status(tag, id, &mailbox, &item_names).await
            }
            (CommandBody::Append { mailbox, flags, date, message }, Some(id)) => {
                let data = match &message {
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
                    imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
                };
                let date = date.map(|d| d.as_ref().timestamp());
                self.append(tag, id, &mailbox, &flags, date, data).await
            }
            (CommandBody::GetQuotaRoot { mailbox }, Some(id)) => self.quota(tag, id, Some(mailbox)).await,
            (CommandBody::GetQuota { root }, Some(id)) => {
                if root.as_ref().is_empty() {
                    self.quota(tag, id, None).await
                } else {
                    no(tag, Some(other_code("NONEXISTENT")), "the only quota root is \"\"")
                }
            }
            (_, Some(_)) if !selected => bad(Some(tag), "select a mailbox first"),
            (CommandBody::Close, Some(id)) => {
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
                    if let Err(status) = self.ctx.mailbox.clone().expunge(request).await {
                        tracing::warn!(%status, "CLOSE could not expunge");
                    }
                }
                self.state.deselect();
                ok(tag, None, "CLOSE completed")
            }
            (CommandBody::Unselect, Some(_)) => {
                self.state.deselect();
                ok(tag, None, "UNSELECT completed")
            }
            (CommandBody::Expunge, Some(id)) => self.expunge(tag, id, None).await,
            (CommandBody::ExpungeUid { sequence_set }, Some(id)) => self.expunge(tag, id, Some(&sequence_set)).await,
            (CommandBody::Search { charset, criteria, uid }, Some(id)) => {
                self.search(tag, id, charset.as_ref(), criteria.as_ref(), uid).await
            }
            (CommandBody::Thread { algorithm, charset, search_criteria, uid }, Some(id)) => {
                self.thread(tag, id, &algorithm, &charset, search_criteria.as_ref(), uid).await
            }
            (CommandBody::Sort { sort_criteria, charset, search_criteria, uid }, Some(id)) => {
                self.sort(tag, id, sort_criteria.as_ref(), &charset, search_criteria.as_ref(), uid).await
            }
            (CommandBody::Fetch { sequence_set, macro_or_item_names, uid, modifiers }, Some(id)) => {
                let changed_since = modifiers.iter().find_map(|m| match m {
                    FetchModifier::ChangedSince(since) => Some(since.get()),
                    _ => None,
                });
                let vanished = modifiers.iter().any(|m| matches!(m, FetchModifier::Vanished));
                if vanished && !(uid && changed_since.is_some() && self.state.login().is_some_and(|l| l.qresync)) {
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
            (CommandBody::Store { sequence_set, kind, response, flags, uid, modifiers }, Some(id)) => {
                let unchanged_since = modifiers.iter().map(|StoreModifier::UnchangedSince(n)| *n).next();
                self.store(tag, id, &sequence_set, &kind, &response, &flags, uid, unchanged_since).await
            }
            (CommandBody::Copy { sequence_set, mailbox, uid }, Some(id)) => {
                self.copy(tag, id, &sequence_set, &mailbox, uid, false).await
            }
            (CommandBody::Move { sequence_set, mailbox, uid }, Some(id)) => {
                self.copy(tag, id, &sequence_set, &mailbox, uid, true).await
            }
            (_, Some(_)) => bad(Some(tag), "command not supported"),
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

    /// RFC 9051 §6.2.1: the go-ahead goes out in the clear; anything the client sent after STARTTLS is
    /// dropped unread; then a fresh framer over the TLS stream.
    async fn start_tls(&mut self, tag: Tag<'static>) -> Flow {
        self.server.enqueue_status(ok(tag, None, "begin TLS negotiation now"));
        self.drain().await;
        let go_ahead = std::mem::take(&mut self.wire.output);
        let login_left = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        let handshake = self.ctx.tls_handshake_timeout.min(login_left);
        match self.wire.start_tls(&go_ahead, &self.ctx.tls, handshake).await {
            Ok(_) => {
                self.tls = true;
                self.server = new_server(&self.ctx, None, self.framing);
                self.fed = 0;
                Flow::Continue
            }
            Err(StartTlsError::Write(error)) => {
                tracing::debug!(%error, "STARTTLS go-ahead not written");
                Flow::Close
            }
            Err(error) => {
                tracing::info!(?error, "STARTTLS handshake failed");
                Flow::Close
            }
        }
    }

    /// Brings the selected mailbox up to date with the store and tells the client: EXPUNGE (when `mode`
    /// allows), EXISTS for new messages, FETCH FLAGS for changed ones. `force` looks even without an event.
    async fn sync(&mut self, mode: Sync, force: bool) -> Flow {
        let Some(account_id) = self.state.login().map(|l| l.account_id) else { return Flow::Continue };
        let condstore = self.state.login().is_some_and(|l| l.condstore);
        let rev2 = self.rev2();
        let Some(selected) = self.state.selected() else { return Flow::Continue };
        if selected.dirty || force {
            let request = pb::ChangesRequest {
                account_id: account_id.get(),
                mailbox: selected.name.clone(),
                since_modseq: selected.highest_modseq,
                claim_recent: !selected.read_only && !rev2,
            };
            let changes = match self.ctx.mailbox.clone().changes(request).await {
                Ok(changes) => changes.into_inner(),
                Err(status) if status.code() == tonic::Code::NotFound => {
                    self.server.enqueue_status(Status::bye(None, "the selected mailbox was deleted").expect("ASCII"));
                    self.drain().await;
                    return Flow::Close;
                }
                Err(status) => {
                    tracing::warn!(%status, "cannot read mailbox changes");
                    return Flow::Continue;
                }
            };
            let Some(selected) = self.state.selected() else { return Flow::Continue };
            if changes.uidvalidity != selected.uidvalidity {
                self.server.enqueue_status(Status::bye(None, "the selected mailbox was replaced").expect("ASCII"));
                self.drain().await;
                return Flow::Close;
            }
            selected.dirty = false;
            selected.own_modseqs.clear();
            selected.highest_modseq = selected.highest_modseq.max(changes.highest_modseq);
            let known = selected.uids.last().copied().unwrap_or(0);
            for uid in changes.vanished {
                if selected.uids.binary_search(&uid).is_ok() {
                    selected.vanished.insert(uid);
                }
            }
            let mut data = Vec::new();
            let mut flags_changed = Vec::new();
            let mut arrived = false;
            for entry in changes.changed {
                if entry.uid > known {
                    selected.uids.push(entry.uid);
                    if !rev2 {
                        selected.recent.arrived(entry.uid, changes.recent_from);
                    }
                    arrived = true;
                } else if let Ok(index) = selected.uids.binary_search(&entry.uid) {
                    flags_changed.push((index, entry));
                }
            }
            if arrived {
                selected.uids.sort_unstable();
                selected.uids.dedup();
            }
            for (index, entry) in flags_changed {
                announce_new_keywords(selected, &entry.flags, &mut self.server);
                let recent = selected.recent.contains(entry.uid);
                let mut items =
                    vec![MessageDataItem::Flags(flags_of(&entry.flags, recent)), MessageDataItem::Uid(nz(entry.uid))];
                if condstore && let Some(modseq) = NonZeroU64::new(entry.modseq) {
                    items.push(MessageDataItem::ModSeq(modseq));
                }
                data.push(Data::Fetch { seq: nz(index as u32 + 1), items: Vec1::try_from(items).expect("not empty") });
            }
            for item in data {
                self.server.enqueue_data(item);
            }
            if arrived && let Some(selected) = self.state.selected() {
                // Messages expunged but not yet announced still count: their numbers are still in use.
                self.server.enqueue_data(Data::Exists(selected.uids.len() as u32));
                if !rev2 {
                    // RFC 3501 §7.3.2: the number of recent messages, with the new EXISTS.
                    self.server.enqueue_data(Data::Recent(selected.recent.count()));
                }
            }
        }
        let qresync = self.state.login().is_some_and(|l| l.qresync);
        if mode == Sync::Full
            && let Some(selected) = self.state.selected()
            && !selected.vanished.is_empty()
        {
            let gone = std::mem::take(&mut selected.vanished);
            // Each EXPUNGE numbers the message as it is after the ones before it (RFC 9051 §7.5.1); one
            // pass over the map rather than a removal per UID.
            let mut expunges = Vec::new();
            let mut vanished = Vec::new();
            let mut kept = Vec::with_capacity(selected.uids.len().saturating_sub(gone.len()));
            for &uid in &selected.uids {
                if gone.contains(&uid) {
                    expunges.push(Data::Expunge(nz(kept.len() as u32 + 1)));
                    vanished.push(uid);
                    selected.recent.expunged(uid);
                } else {
                    kept.push(uid);
                }
            }
            selected.uids = kept;
            if qresync {
                // RFC 7162 §3.2.10: with QRESYNC, one VANISHED instead of an EXPUNGE per message.
                if let Ok(known_uids) = SequenceSet::try_from(render::uid_set_text(&vanished).as_str()) {
                    self.server.enqueue_data(Data::Vanished { earlier: false, known_uids });
                }
            } else {
                for expunge in expunges {
                    self.server.enqueue_data(expunge);
                }
            }
        }
        Flow::Continue
    }

    async fn select(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'_>,
        read_only: bool,
        parameters: &[SelectParameter],
    ) -> Status<'static> {
        let condstore =
            parameters.iter().any(|p| matches!(p, SelectParameter::CondStore | SelectParameter::QResync { .. }));
        let resync = parameters.iter().find_map(|p| match p {
            SelectParameter::QResync { uid_validity, mod_sequence_value, known_uids, .. } => {
                Some((uid_validity.get(), mod_sequence_value.get(), known_uids.clone()))
            }
            _ => None,
        });
        let had_selection = matches!(self.state, State::Selected(..));
        self.state.deselect();
        let condstore = condstore || self.state.login().is_some_and(|l| l.condstore);
        if condstore && let Some(login) = self.state.login_mut() {
            login.condstore = true;
        }
        if had_selection && condstore {
            let closed = Status::ok(None, Some(Code::Closed), "previous mailbox closed").expect("ASCII");
            self.server.enqueue_status(closed);
        }
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        // RFC 9051 has no \Recent: an IMAP4rev2 session takes none from IMAP4rev1 ones.
        let claim_recent = !read_only && !self.rev2();
        let request = pb::SelectRequest { account_id: account_id.get(), mailbox: name.clone(), claim_recent };
        let selected = match self.ctx.mailbox.clone().select(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => return refusal(tag, &status),
        };
        let status = selected.status.unwrap_or_default();
        let mut flags = vec![Flag::Answered, Flag::Flagged, Flag::Deleted, Flag::Seen, Flag::Draft];
        flags.extend(
            selected.keywords.iter().filter_map(|k| Flag::try_from(k.as_str()).ok().map(IntoStatic::into_static)),
        );
        self.server.enqueue_data(Data::Flags(flags.clone()));
        self.server.enqueue_data(Data::Exists(selected.uids.len() as u32));
        let recent = if self.rev2() {
            // IMAP4rev2 has no \Recent and no RECENT response.
            recent::Recent::default()
        } else {
            let recent = recent::Recent::selected(&selected.uids, selected.recent_from);
            self.server.enqueue_data(Data::Recent(recent.count()));
            recent
        };
        if let Some(position) = selected.uids.iter().position(|&u| u == selected.first_unseen_uid) {
            let unseen = Status::ok(None, Some(Code::Unseen(nz(position as u32 + 1))), "first unseen").expect("ASCII");
            self.server.enqueue_status(unseen);
        }
        let permanent: Vec<FlagPerm> = if read_only {
            Vec::new()
        } else {
            flags.into_iter().map(FlagPerm::Flag).chain([FlagPerm::Asterisk]).collect()
        };
        let say = |code: Code<'static>, text: &str| Status::ok(None, Some(code), text.to_owned()).expect("ASCII");
        self.server.enqueue_status(say(Code::PermanentFlags(permanent), "flags permitted"));
        self.server.enqueue_status(say(Code::UidNext(nz(status.uidnext)), "predicted next UID"));
        self.server.enqueue_status(say(Code::UidValidity(nz(status.uidvalidity)), "UIDs valid"));
        // RFC 7162 §3.1.2.1: a server that offers CONDSTORE reports HIGHESTMODSEQ on every SELECT.
        {
            match NonZeroU64::new(status.highest_modseq) {
                Some(modseq) => self.server.enqueue_status(say(Code::HighestModSeq(modseq), "highest")),
                None => self.server.enqueue_status(say(Code::NoModSeq, "no MODSEQ yet")),
            };
        }
        // RFC 8474 §4.1: the mailbox's id, JMAP's Mailbox id.
        self.server.enqueue_status(say(mailbox_id_code(status.mailbox_id), "mailbox id"));
        let login = match std::mem::replace(&mut self.state, State::NotAuthenticated { failures: 0 }) {
            State::Authenticated(login) | State::Selected(login, _) => login,
            State::NotAuthenticated { .. } => unreachable!("select runs authenticated"),
        };
        self.state = State::Selected(
            login,
            Selected {
                name: if selected.name.is_empty() { name } else { selected.name },
                read_only,
                uidvalidity: status.uidvalidity,
                uids: selected.uids,
                highest_modseq: status.highest_modseq,
                dirty: false,
                vanished: Default::default(),
                saved: Vec::new(),
                own_modseqs: Default::default(),
                keywords: selected.keywords.iter().map(|k| (k.to_ascii_lowercase(), k.clone())).collect(),
                recent,
            },
        );
        if let Some((uidvalidity, since, known)) = resync
            && uidvalidity == status.uidvalidity
            && let Err(status) = self.resync(account_id, since, known.as_ref()).await
        {
            // The client would keep a MODSEQ that its cache does not match: no SELECT rather than a wrong one.
            self.state.deselect();
            return refusal(tag, &status);
        }
        let code = if read_only { Code::ReadOnly } else { Code::ReadWrite };
        ok(tag, Some(code), if read_only { "EXAMINE completed" } else { "SELECT completed" })
    }

    /// SELECT (QRESYNC (uidvalidity modseq [known-uids])), RFC 7162 §3.2.5.1: what the client's cache
    /// missed since its MODSEQ, as VANISHED (EARLIER) and FETCH (UID FLAGS MODSEQ).
    async fn resync(
        &mut self,
        account_id: AccountId,
        since: u64,
        known: Option<&SequenceSet>,
    ) -> Result<(), tonic::Status> {
        let Some(selected) = self.state.selected() else { return Ok(()) };
        let request = pb::ChangesRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            since_modseq: since,
            claim_recent: false,
        };
        let changes = self.ctx.mailbox.clone().changes(request).await?.into_inner();
        let Some(selected) = self.state.selected() else { return Ok(()) };
        let mut gone = changes.vanished;
        if let Some(known) = known {
            let largest = selected.uids.last().copied().unwrap_or(0).max(gone.last().copied().unwrap_or(0));
            gone = render::resolve_with_largest(known, &gone, largest);
        }
        if let Ok(known_uids) = SequenceSet::try_from(render::uid_set_text(&gone).as_str()) {
            self.server.enqueue_data(Data::Vanished { earlier: true, known_uids });
        }
        let mut data = Vec::new();
        for entry in changes.changed {
            let Ok(index) = selected.uids.binary_search(&entry.uid) else { continue };
            announce_new_keywords(selected, &entry.flags, &mut self.server);
            let flags = flags_of(&entry.flags, selected.recent.contains(entry.uid));
            let mut items = vec![MessageDataItem::Uid(nz(entry.uid)), MessageDataItem::Flags(flags)];
            if let Some(modseq) = NonZeroU64::new(entry.modseq) {
                items.push(MessageDataItem::ModSeq(modseq));
            }
            data.push(Data::Fetch { seq: nz(index as u32 + 1), items: Vec1::try_from(items).expect("not empty") });
        }
        for item in data {
            self.server.enqueue_data(item);
        }
        Ok(())
    }

    /// UID FETCH … (CHANGEDSINCE m VANISHED), RFC 7162 §3.2.6: the UIDs of the set expunged since m.
    async fn vanished_earlier(
        &mut self,
        account_id: AccountId,
        set: &SequenceSet,
        since: u64,
    ) -> Result<(), tonic::Status> {
        let Some(selected) = self.state.selected() else { return Ok(()) };
        let request = pb::ChangesRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            since_modseq: since,
            claim_recent: false,
        };
        let changes = self.ctx.mailbox.clone().changes(request).await?.into_inner();
        let Some(selected) = self.state.selected() else { return Ok(()) };
        // `*` is the mailbox's largest UID, not the largest expunged one.
        let largest = selected.uids.last().copied().unwrap_or(0).max(changes.vanished.last().copied().unwrap_or(0));
        let gone = render::resolve_with_largest(set, &changes.vanished, largest);
        if let Ok(known_uids) = SequenceSet::try_from(render::uid_set_text(&gone).as_str()) {
            self.server.enqueue_data(Data::Vanished { earlier: true, known_uids });
        }
        Ok(())
    }

    /// RFC 9208: one quota root, "", for the whole account, with STORAGE (in KiB) and MESSAGE limits.
    async fn quota(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: Option<Mailbox<'static>>,
    ) -> Status<'static> {
        use imap_types::core::AString;
        use imap_types::extensions::quota::{QuotaGet, Resource};
        if let Some(mailbox) = &mailbox {
            // RFC 9208 §4.3: GETQUOTAROOT of a mailbox that does not exist is NO.
            let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
            if let Err(status) =
                self.ctx.mailbox.clone().status(pb::StatusRequest { account_id: account_id.get(), mailbox: name }).await
            {
                return refusal(tag, &status);
            }
        }
        let usage = match self.ctx.mailbox.clone().get_quota(pb::GetQuotaRequest { account_id: account_id.get() }).await
        {
            Ok(reply) => reply.into_inner(),
            Err(status) => return refusal(tag, &status),
        };
        let mut quotas = Vec::new();
        if let Some(limit) = usage.limit_bytes {
            quotas.push(QuotaGet::new(Resource::Storage, usage.used_bytes.div_ceil(1024), limit / 1024));
        }
        if let Some(limit) = usage.limit_messages {
            quotas.push(QuotaGet::new(Resource::Message, usage.used_messages, limit));
        }
        let root = AString::try_from("").expect("the empty string is a valid astring");
        if let Some(mailbox) = mailbox {
            let roots = if quotas.is_empty() { Vec::new() } else { vec![root.clone()] };
            self.server.enqueue_data(Data::QuotaRoot { mailbox, roots });
        }
        if let Ok(quotas) = Vec1::try_from(quotas) {
            self.server.enqueue_data(Data::Quota { root, quotas });
        }
        ok(tag, None, "GETQUOTA completed")
    }

    async fn create(&mut self, tag: Tag<'static>, account_id: AccountId, mailbox: &Mailbox<'_>) -> Status<'static> {
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        // RFC 9051 §6.3.4: a trailing separator only says the client means to create children.
        let name = name.trim_end_matches(DELIMITER).to_owned();
        // RFC 6154 §3: the one attribute the mailbox is to have, or NO [USEATTR] before anything is made.
        let special_use = match self.extended.take() {
            Some(render::Extended::Create { uses }) if !uses.is_empty() => {
                let Some(attribute) = create_special_use::attribute(&uses) else {
                    return no(
                        tag,
                        Some(other_code("USEATTR")),
                        "one of \\Drafts \\Sent \\Trash \\Junk \\Archive \\All \\Flagged",
                    );
                };
                let taken = pb::ListMailboxesRequest {
                    account_id: account_id.get(),
                    patterns: vec!["*".into()],
                    special_use_only: true,
                    ..Default::default()
                };
                match self.ctx.mailbox.clone().list_mailboxes(taken).await {
                    Ok(list)
                        if list.get_ref().mailboxes.iter().any(|m| m.special_use.eq_ignore_ascii_case(attribute)) =>
                    {
                        return no(tag, Some(other_code("USEATTR")), &format!("another mailbox is {attribute}"));
                    }
                    Ok(_) => attribute.to_owned(),
                    Err(status) => return refusal(tag, &status),
                }
            }
            _ => String::new(),
        };
        let request = pb::CreateMailboxRequest { account_id: account_id.get(), name, special_use };
        match self.ctx.mailbox.clone().create_mailbox(request).await {
            // RFC 8474 §4.1: the new mailbox's id.
            Ok(reply) => ok(tag, Some(mailbox_id_code(reply.into_inner().mailbox_id)), "CREATE completed"),
            Err(status) => refusal(tag, &status),
        }
    }

    async fn delete(&mut self, tag: Tag<'static>, account_id: AccountId, mailbox: &Mailbox<'_>) -> Status<'static> {
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        let request = pb::DeleteMailboxRequest { account_id: account_id.get(), name: name.clone() };
        match self.ctx.mailbox.clone().delete_mailbox(request).await {
            Ok(_) => {
                let _ = self
                    .ctx
                    .mailbox
                    .clone()
                    .subscribe(pb::SubscribeRequest { account_id: account_id.get(), name, subscribed: false })
                    .await;
                ok(tag, None, "DELETE completed")
            }
            Err(status) => refusal(tag, &status),
        }
    }

    async fn rename(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        from: &Mailbox<'_>,
        to: &Mailbox<'_>,
    ) -> Status<'static> {
        let (Some(from), Some(to)) = (self.name_of(from), self.name_of(to)) else {
            return no(tag, None, "mailbox name is not modified UTF-7");
        };
        let request = pb::RenameMailboxRequest { account_id: account_id.get(), from: from.clone(), to: to.clone() };
        match self.ctx.mailbox.clone().rename_mailbox(request).await {
            Ok(_) => {
                if from != "INBOX"
                    && let Some(selected) = self.state.selected()
                {
                    selected.follow_rename(&from, &to);
                }
                ok(tag, None, "RENAME completed")
            }
            Err(status) => refusal(tag, &status),
        }
    }

    async fn subscribe(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'_>,
        subscribed: bool,
    ) -> Status<'static> {
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        match self
            .ctx
            .mailbox
            .clone()
            .subscribe(pb::SubscribeRequest { account_id: account_id.get(), name, subscribed })
            .await
        {
            Ok(_) => ok(tag, None, if subscribed { "SUBSCRIBE completed" } else { "UNSUBSCRIBE completed" }),
            Err(status) => refusal(tag, &status),
        }
    }

    async fn list(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Status<'static> {
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        let reference = match reference {
            Mailbox::Inbox => "INBOX".to_owned(),
            Mailbox::Other(other) => String::from_utf8_lossy(other.inner().as_ref()).into_owned(),
        };
        let delimiter = Some(QuotedChar::try_from(DELIMITER).expect("a valid delimiter"));
        // RFC 5258 selection options and RFC 5258/5819 return options, and a pattern list, when the command
        // had them.
        let (selection, returns, status_items, pattern_list) = match self.extended.take() {
            Some(render::Extended::List { selection, returns, status, patterns }) => {
                (selection, returns, status, patterns)
            }
            _ => Default::default(),
        };
        if pattern.is_empty() && pattern_list.is_empty() {
            // RFC 9051 §6.3.9: LIST "" "" asks for the delimiter and the root.
            let root = Mailbox::try_from(String::new()).unwrap_or(Mailbox::Inbox);
            let items = vec![FlagNameAttribute::Noselect];
            self.server.enqueue_data(if lsub {
                Data::Lsub { items, delimiter, mailbox: root }
            } else {
                Data::List { items, delimiter, mailbox: root }
            });
            return ok(tag, None, "LIST completed");
        }
        let decode = |text: &str| if self.utf8() { Some(text.to_owned()) } else { render::from_utf7(text) };
        let Some(reference) = decode(&reference) else { return ok(tag, None, "LIST completed") };
        // RFC 5258 §3: each pattern of a list matches on its own; one that is not valid matches nothing.
        let patterns: Vec<String> = if pattern_list.is_empty() { vec![pattern] } else { pattern_list };
        let patterns: Vec<String> = patterns.iter().filter_map(|p| decode(p)).collect();
        if patterns.is_empty() {
            return ok(tag, None, "LIST completed");
        }
        let extended = !selection.is_empty() || !returns.is_empty();
        let has = |list: &[String], word: &str| list.iter().any(|w| w == word);
        let subscribed_only = lsub || has(&selection, "SUBSCRIBED");
        let mark_subscribed = has(&selection, "SUBSCRIBED") || has(&returns, "SUBSCRIBED");
        let request = pb::ListMailboxesRequest {
            account_id: account_id.get(),
            reference,
            patterns,
            subscribed_only,
            special_use_only: has(&selection, "SPECIAL-USE"),
            with_status: !status_items.is_empty(),
            lsub_parents: lsub,
            // RFC 5258 §3.5: parents of subscribed names, with CHILDINFO ("SUBSCRIBED").
            recursive_match: has(&selection, "RECURSIVEMATCH") && has(&selection, "SUBSCRIBED"),
        };
        let listed = match self.ctx.mailbox.clone().list_mailboxes(request).await {
            Ok(reply) => reply.into_inner().mailboxes,
            Err(status) => return refusal(tag, &status),
        };
        for mailbox in listed {
            let attribute = |name: &str| FlagNameAttribute::from(atom(name));
            let mut items = Vec::new();
            if !mailbox.exists {
                // RFC 5258 §3: \NonExistent (which implies \Noselect) for a subscribed name with no mailbox.
                items.push(if extended { attribute("NonExistent") } else { FlagNameAttribute::Noselect });
            } else if lsub && !mailbox.subscribed {
                // RFC 3501 §6.3.9: an unsubscribed parent that `%` stopped at, listed for its children.
                items.push(FlagNameAttribute::Noselect);
            }
            if mark_subscribed && mailbox.subscribed {
                items.push(attribute("Subscribed"));
            }
            items.push(attribute(if mailbox.has_children { "HasChildren" } else { "HasNoChildren" }));
            if let Some(special) = mailbox.special_use.strip_prefix('\\') {
                items.push(attribute(special));
            }
            let name = wire_mailbox_in(&mailbox.name, self.utf8());
            let data = if lsub {
                Data::Lsub { items, delimiter, mailbox: name.clone() }
            } else {
                Data::List { items, delimiter, mailbox: name.clone() }
            };
            if mailbox.child_subscribed {
                let line = ResponseCodec::default().encode(&Response::Data(data)).dump();
                let line = list_extended::with_child_info(line);
                self.raw_untagged(String::from_utf8_lossy(&line).into_owned()).await;
            } else {
                self.server.enqueue_data(data);
            }
            // RFC 5819: the STATUS of each selectable mailbox, right after its LIST.
            if let Some(status) = mailbox.status.filter(|_| mailbox.exists) {
                let items: Vec<StatusDataItem> =
                    status_items.iter().filter_map(|item| status_item(item, &status)).collect();
                self.server.enqueue_data(Data::Status { mailbox: name, items: items.into() });
            }
        }
        ok(tag, None, if lsub { "LSUB completed" } else { "LIST completed" })
    }

    async fn status(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'static>,
        names: &[StatusDataItemName],
    ) -> Status<'static> {
        let ids = self.object_ids();
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        let status = match self
            .ctx
            .mailbox
            .clone()
            .status(pb::StatusRequest { account_id: account_id.get(), mailbox: name })
            .await
        {
            Ok(reply) => reply.into_inner(),
            Err(status) => return refusal(tag, &status),
        };
        let items: Vec<StatusDataItem> = names
            .iter()
            .filter_map(|item| match item {
                StatusDataItemName::Messages if ids.filler => None,
                StatusDataItemName::Messages => Some(StatusDataItem::Messages(status.messages)),
                StatusDataItemName::Recent => Some(StatusDataItem::Recent(status.recent)),
                StatusDataItemName::UidNext => Some(StatusDataItem::UidNext(nz(status.uidnext))),
                StatusDataItemName::UidValidity => Some(StatusDataItem::UidValidity(nz(status.uidvalidity))),
                StatusDataItemName::Unseen => Some(StatusDataItem::Unseen(status.unseen)),
                StatusDataItemName::Deleted => Some(StatusDataItem::Deleted(status.deleted)),
                StatusDataItemName::Size => Some(StatusDataItem::Size(status.size)),
                StatusDataItemName::HighestModSeq => Some(StatusDataItem::HighestModSeq(status.highest_modseq)),
                _ => None,
            })
            .collect();
        let data = Data::Status { mailbox: mailbox.clone(), items: items.into() };
        if ids.mailbox {
            let line = ResponseCodec::default().encode(&Response::Data(data)).dump();
            let line = object_id::splice(line, &format!("MAILBOXID (m{})", status.mailbox_id));
            self.raw_untagged(String::from_utf8_lossy(&line).into_owned()).await;
        } else {
            self.server.enqueue_data(data);
        }
        ok(tag, None, "STATUS completed")
    }

    async fn append(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<i64>,
        data: Vec<u8>,
    ) -> Status<'static> {
        let Some(name) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        if data.len() as u64 > self.ctx.max_message_size {
            return no(tag, Some(Code::TooBig), "message exceeds APPENDLIMIT");
        }
        let header = pb::AppendHeader {
            account_id: account_id.get(),
            mailbox: name,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            internal_date_unix: date,
            size: data.len() as u64,
            import_digest: None,
        };
        let parts = mailbus_proto::upload::append(header, &data, mailbus_proto::upload::CHUNK);
        match self.ctx.mailbox.clone().append(futures::stream::iter(parts)).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                let code = Code::AppendUid { uid_validity: nz(reply.uidvalidity), uid: nz(reply.uid) };
                if let Some(selected) = self.state.selected() {
                    selected.dirty = true;
                }
                ok(tag, Some(code), "APPEND completed")
            }
            Err(status) if status.code() == tonic::Code::NotFound => no(tag, Some(Code::TryCreate), "no such mailbox"),
            Err(status) => refusal(tag, &status),
        }
    }

    async fn expunge(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        set: Option<&SequenceSet>,
    ) -> Status<'static> {
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if selected.read_only {
            return no(tag, Some(Code::ReadOnly), "the mailbox is read-only");
        }
        let uids = match set {
            Some(set) => render::resolve(set, &selected.uids, true),
            None => selected.uids.clone(),
        };
        if uids.is_empty() {
            return ok(tag, None, "EXPUNGE completed");
        }
        let request = pb::ExpungeRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            uids,
            deleted_only: true,
        };
        match self.ctx.mailbox.clone().expunge(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                if let Some(selected) = self.state.selected() {
                    if !reply.expunged.is_empty() {
                        selected.own_modseqs.insert(reply.highest_modseq);
                    }
                    selected.saw_modseq(reply.highest_modseq);
                    selected.vanished.extend(reply.expunged);
                }
                ok(tag, None, "EXPUNGE completed")
            }
            Err(status) => refusal(tag, &status),
        }
    }

    async fn search(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        charset: Option<&Charset<'_>>,
        criteria: &[SearchKey<'_>],
        by_uid: bool,
    ) -> Status<'static> {
        let rev2 = self.rev2();
        if let Some(charset) = charset
            && !searchable_charset(charset)
        {
            return bad_charset(tag);
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        let recent = selected.recent.uids();
        let keys: Vec<pb::SearchKey> =
            criteria.iter().map(|k| render::search_key(k, &selected.uids, &recent)).collect();
        let wants_modseq = criteria.iter().any(has_modseq);
        if wants_modseq {
            self.enable_condstore();
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        let mailbox = selected.name.clone();
        let found = match self.search_rpc(account_id, mailbox, keys, false).await {
            Ok(found) => found,
            Err(status) => return refusal(tag, &status),
        };
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        selected.saw_modseq(found.mailbox_modseq);
        // Only messages this session has announced: a UID the client has not heard of yet is left out.
        // Each keeps its MODSEQ: the one reported is the highest of the messages returned (RFC 7162
        // §3.1.5, RFC 4731 §3.2).
        let modseq_of = |i: usize| found.modseqs.get(i).copied().unwrap_or(found.highest_modseq);
        let announced: Vec<(NonZeroU32, u64)> = found
            .uids
            .iter()
            .enumerate()
            .filter_map(|(i, uid)| {
                let number = selected.uids.binary_search(uid).ok()?;
                Some((if by_uid { nz(*uid) } else { nz(number as u32 + 1) }, modseq_of(i)))
            })
            .collect();
        let numbers: Vec<NonZeroU32> = announced.iter().map(|&(number, _)| number).collect();
        let highest_of = |returned: &[&(NonZeroU32, u64)]| {
            returned.iter().map(|&&(_, modseq)| modseq).max().filter(|_| wants_modseq).and_then(NonZeroU64::new)
        };
        let modseq = highest_of(&announced.iter().collect::<Vec<_>>());
        let extended = match self.extended.take().filter(|e| matches!(e, render::Extended::Search { .. })) {
            // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §6.4.4).
            None if rev2 => Some(render::Extended::Search { options: Vec::new() }),
            other => other,
        };
        if let Some(render::Extended::Search { mut options }) = extended {
            if let Some(at) = options.iter().position(|o| o == "SAVE") {
                // RFC 5182 SEARCHRES: remember the result for `$`; alone, SAVE asks for no ESEARCH line.
                options.remove(at);
                let saved = found.uids.iter().copied().filter(|u| selected.uids.binary_search(u).is_ok()).collect();
                if let Some(selected) = self.state.selected() {
                    selected.saved = saved;
                }
                if options.is_empty() {
                    return ok(tag, None, "SEARCH completed, result saved");
                }
            }
            // RFC 4731: one ESEARCH line with what RETURN asked for (ALL when it asked for nothing).
            let values: Vec<u32> = numbers.iter().map(|n| n.get()).collect();
            let mut line = format!("* ESEARCH (TAG \"{}\")", tag.inner());
            if by_uid {
                line.push_str(" UID");
            }
            let all = options.is_empty() || options.iter().any(|o| o == "ALL");
            if options.iter().any(|o| o == "MIN")
                && let Some(min) = values.first()
            {
                line.push_str(&format!(" MIN {min}"));
            }
            if options.iter().any(|o| o == "MAX")
                && let Some(max) = values.last()
            {
                line.push_str(&format!(" MAX {max}"));
            }
            if all && !values.is_empty() {
                line.push_str(&format!(" ALL {}", render::uid_set_text(&values)));
            }
            if options.iter().any(|o| o == "COUNT") {
                line.push_str(&format!(" COUNT {}", values.len()));
            }
            // MIN or MAX without ALL or COUNT returns one or two messages: the MODSEQ is theirs.
            let narrowed = !all && !options.iter().any(|o| o == "COUNT");
            let modseq = if narrowed {
                let min = announced.first().filter(|_| options.iter().any(|o| o == "MIN"));
                let max = announced.last().filter(|_| options.iter().any(|o| o == "MAX"));
                highest_of(&min.into_iter().chain(max).collect::<Vec<_>>())
            } else {
                modseq
            };
            if let Some(modseq) = modseq {
                line.push_str(&format!(" MODSEQ {modseq}"));
            }
            line.push_str("\r\n");
            self.raw_untagged(line).await;
            return ok(tag, None, "SEARCH completed");
        }
        self.server.enqueue_data(Data::Search(numbers, modseq));
        ok(tag, None, "SEARCH completed")
    }

    /// The messages of `mailbox` that match every one of `keys`, from the mailbox role; with `threading`,
    /// what THREAD needs of each too.
    async fn search_rpc(
        &self,
        account_id: AccountId,
        mailbox: String,
        keys: Vec<pb::SearchKey>,
        threading: bool,
    ) -> Result<pb::SearchResponse, tonic::Status> {
        self.search_for(account_id, mailbox, keys, threading, false).await
    }

    /// A search that also brings THREAD's (`threading`) or SORT's (`sorting`) facts of each match.
    async fn search_for(
        &self,
        account_id: AccountId,
        mailbox: String,
        keys: Vec<pb::SearchKey>,
        threading: bool,
        sorting: bool,
    ) -> Result<pb::SearchResponse, tonic::Status> {
        let key = pb::SearchKey { key: Some(pb::search_key::Key::And(pb::SearchKeys { keys })) };
        let request = pb::SearchRequest { account_id: account_id.get(), mailbox, key: Some(key), threading, sorting };
        Ok(self.ctx.mailbox.clone().search(request).await?.into_inner())
    }

    /// SORT's and THREAD's common first half: the charset checked, `criteria` turned into store keys
    /// against the selected mailbox, the search asked with THREAD's (`threading`) or SORT's (`sorting`)
    /// facts of each match, and the selected view told of the mailbox's modseq. `Err` is the tagged answer.
    async fn search_selected(
        &mut self,
        tag: &Tag<'static>,
        account_id: AccountId,
        charset: &Charset<'_>,
        criteria: &[SearchKey<'_>],
        threading: bool,
        sorting: bool,
    ) -> Result<pb::SearchResponse, Status<'static>> {
        if !searchable_charset(charset) {
            return Err(bad_charset(tag.clone()));
        }
        let Some(selected) = self.state.selected() else {
            return Err(bad(Some(tag.clone()), "select a mailbox first"));
        };
        let recent = selected.recent.uids();
        let keys: Vec<pb::SearchKey> =
            criteria.iter().map(|k| render::search_key(k, &selected.uids, &recent)).collect();
        let mailbox = selected.name.clone();
        let found = match self.search_for(account_id, mailbox, keys, threading, sorting).await {
            Ok(found) => found,
            Err(status) => return Err(refusal(tag.clone(), &status)),
        };
        if let Some(selected) = self.state.selected() {
            selected.saw_modseq(found.mailbox_modseq);
        }
        Ok(found)
    }

    /// RFC 5256 SORT (and RFC 5957's DISPLAYFROM/DISPLAYTO): the matches of `criteria`, ordered by
    /// `sort_criteria` (`sort.rs`), written raw.
    async fn sort(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        sort_criteria: &[SortCriterion],
        charset: &Charset<'_>,
        criteria: &[SearchKey<'_>],
        by_uid: bool,
    ) -> Status<'static> {
        let found = match self.search_selected(&tag, account_id, charset, criteria, false, true).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        // Only messages this session has announced, as SEARCH answers.
        let messages: Vec<sort::Message> = found
            .uids
            .iter()
            .zip(found.sorting)
            .filter_map(|(&uid, keys)| {
                let index = selected.uids.binary_search(&uid).ok()?;
                Some(sort::Message { number: if by_uid { uid } else { index as u32 + 1 }, keys })
            })
            .collect();
        let sorted = sort::sort(messages, sort_criteria);
        let line = match self.extended.take() {
            Some(render::Extended::Sort { options }) => sort::render_esearch(tag.inner(), by_uid, &options, &sorted),
            _ => sort::render(&sorted),
        };
        self.raw_untagged(line).await;
        ok(tag, None, "SORT completed")
    }

    /// RFC 5256 THREAD: the matches of `criteria`, threaded by `algorithm` (`thread.rs`), written raw.
    async fn thread(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        algorithm: &ThreadingAlgorithm<'_>,
        charset: &Charset<'_>,
        criteria: &[SearchKey<'_>],
        by_uid: bool,
    ) -> Status<'static> {
        let references = match algorithm {
            ThreadingAlgorithm::References => true,
            ThreadingAlgorithm::OrderedSubject => false,
            ThreadingAlgorithm::Other(_) => return bad(Some(tag), "unsupported threading algorithm"),
        };
        let found = match self.search_selected(&tag, account_id, charset, criteria, true, false).await {
            Ok(found) => found,
            Err(answer) => return answer,
        };
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        // Only messages this session has announced, as SEARCH answers.
        let messages: Vec<thread::Message> = found
            .uids
            .iter()
            .zip(found.threading)
            .filter_map(|(&uid, t)| {
                let index = selected.uids.binary_search(&uid).ok()?;
                Some(thread::Message {
                    number: if by_uid { uid } else { index as u32 + 1 },
                    thread_id: t.thread_id,
                    message_id: t.message_id,
                    parents: t.parents,
                    base_subject: t.base_subject,
                    date: t.internal_date_unix,
                })
            })
            .collect();
        let threads = if references { thread::references(messages) } else { thread::ordered_subject(messages) };
        self.raw_untagged(thread::render(&threads)).await;
        ok(tag, None, "THREAD completed")
    }

    #[allow(clippy::too_many_arguments)]
    async fn store(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        set: &SequenceSet,
        kind: &StoreType,
        response: &StoreResponse,
        flags: &[Flag<'_>],
        by_uid: bool,
        unchanged_since: Option<u64>,
    ) -> Status<'static> {
        let condstore = unchanged_since.is_some() || self.state.login().is_some_and(|l| l.condstore);
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if selected.read_only {
            return no(tag, Some(Code::ReadOnly), "the mailbox is read-only");
        }
        if !by_uid && render::out_of_range(set, selected.uids.len()) {
            return bad(Some(tag), "no such message");
        }
        // RFC 2180 §4.2.1, as Dovecot: a message another session expunged, not yet announced here, is
        // skipped and the STORE goes on for the rest (the EXPUNGE follows when it may be sent).
        let mut uids = render::resolve(set, &selected.uids, by_uid);
        uids.retain(|u| !selected.vanished.contains(u));
        let mode = match kind {
            StoreType::Replace => pb::StoreMode::Replace,
            StoreType::Add => pb::StoreMode::Add,
            StoreType::Remove => pb::StoreMode::Remove,
        };
        let request = pb::StoreRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            uids,
            mode: mode.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            unchanged_since,
        };
        let stored = match self.ctx.mailbox.clone().store(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => return refusal(tag, &status),
        };
        if let Some(selected) = self.state.selected() {
            if stored.changed {
                // This session's own change, already answered with FETCH: its event needs no `Changes` call.
                // (An entry left alone may carry the mailbox's last MODSEQ too, but that change was
                // another session's, and may have touched entries this STORE did not.)
                selected.own_modseqs.insert(stored.highest_modseq);
            }
            // Its own MODSEQ when it changed something, else the mailbox's as the STORE found it.
            selected.saw_modseq(stored.highest_modseq);
        }
        if condstore {
            self.enable_condstore();
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        let silent = matches!(response, StoreResponse::Silent);
        for entry in &stored.updated {
            let Ok(index) = selected.uids.binary_search(&entry.uid) else { continue };
            // .SILENT leaves out the FLAGS the client set itself, but with CONDSTORE the new MODSEQ still goes out.
            announce_new_keywords(selected, &entry.flags, &mut self.server);
            let mut items = Vec::new();
            if !silent {
                items.push(MessageDataItem::Flags(flags_of(&entry.flags, selected.recent.contains(entry.uid))));
            }
            if condstore && let Some(modseq) = NonZeroU64::new(entry.modseq) {
                items.push(MessageDataItem::ModSeq(modseq));
            }
            if by_uid && !items.is_empty() {
                items.push(MessageDataItem::Uid(nz(entry.uid)));
            }
            if let Ok(items) = Vec1::try_from(items) {
                self.server.enqueue_data(Data::Fetch { seq: nz(index as u32 + 1), items });
            }
        }
        // The session's MODSEQ moves only in `sync`: changes made elsewhere before this STORE have not been
        // reported yet, and the next sync will repeat this one's FETCH, which is harmless.
        if stored.modified.is_empty() {
            return ok(tag, None, "STORE completed");
        }
        let modified: Vec<u32> = if by_uid {
            stored.modified
        } else {
            stored.modified.iter().filter_map(|u| selected.uids.binary_search(u).ok()).map(|i| i as u32 + 1).collect()
        };
        match SequenceSet::try_from(render::uid_set_text(&modified).as_str()) {
            Ok(set) => ok(tag, Some(Code::Modified(set)), "conditional STORE failed for some messages"),
            Err(_) => ok(tag, None, "STORE completed"),
        }
    }

    async fn copy(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        set: &SequenceSet,
        mailbox: &Mailbox<'_>,
        by_uid: bool,
        moving: bool,
    ) -> Status<'static> {
        let Some(target) = self.name_of(mailbox) else { return no(tag, None, "mailbox name is not modified UTF-7") };
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if moving && selected.read_only {
            return no(tag, Some(Code::ReadOnly), "the mailbox is read-only");
        }
        if !by_uid && render::out_of_range(set, selected.uids.len()) {
            return bad(Some(tag), "no such message");
        }
        let uids = render::resolve(set, &selected.uids, by_uid);
        if !by_uid && uids.iter().any(|u| selected.vanished.contains(u)) {
            return no(tag, Some(other_code("EXPUNGEISSUED")), "some of the messages were expunged");
        }
        if uids.is_empty() {
            return ok(tag, None, "no messages");
        }
        let source = selected.name.clone();
        let reply = if moving {
            let request =
                pb::MoveRequest { account_id: account_id.get(), from_mailbox: source, to_mailbox: target, uids };
            self.ctx.mailbox.clone().r#move(request).await.map(|r| {
                let r = r.into_inner();
                (r.source_uids, r.target_uidvalidity, r.target_uids)
            })
        } else {
            let request =
                pb::CopyRequest { account_id: account_id.get(), from_mailbox: source, to_mailbox: target, uids };
            self.ctx.mailbox.clone().copy(request).await.map(|r| {
                let r = r.into_inner();
                (r.source_uids, r.target_uidvalidity, r.target_uids)
            })
        };
        let (source_uids, uidvalidity, target_uids) = match reply {
            Ok(reply) => reply,
            Err(status) if status.code() == tonic::Code::NotFound => {
                return no(tag, Some(Code::TryCreate), "no such mailbox");
            }
            Err(status) => return refusal(tag, &status),
        };
        let code = copy_uid(uidvalidity, &source_uids, &target_uids);
        if moving {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            if let Some(code) = code {
                self.server.enqueue_status(Status::ok(None, Some(code), "moved").expect("ASCII"));
            }
            if let Some(selected) = self.state.selected() {
                selected.vanished.extend(source_uids);
            }
            return ok(tag, None, "MOVE completed");
        }
        ok(tag, code, "COPY completed")
    }

    async fn fetch(
        &mut self,
        tag: Tag<'static>,
        account_id: AccountId,
        set: &SequenceSet,
        names: &MacroOrMessageDataItemNames<'static>,
        by_uid: bool,
        changed_since: Option<u64>,
    ) -> Status<'static> {
        let ids = self.object_ids();
        let mut names: Vec<MessageDataItemName<'static>> = match names {
            MacroOrMessageDataItemNames::Macro(Macro::Fast) => {
                vec![MessageDataItemName::Flags, MessageDataItemName::InternalDate, MessageDataItemName::Rfc822Size]
            }
            MacroOrMessageDataItemNames::Macro(Macro::All) => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
                MessageDataItemName::Envelope,
            ],
            MacroOrMessageDataItemNames::Macro(_) => vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
                MessageDataItemName::Envelope,
                MessageDataItemName::Body,
            ],
            MacroOrMessageDataItemNames::MessageDataItemNames(names) => names.clone(),
        };
        if ids.filler && !by_uid {
            names.retain(|n| *n != MessageDataItemName::Uid);
        }
        if by_uid && !names.contains(&MessageDataItemName::Uid) {
            names.insert(0, MessageDataItemName::Uid);
        }
        let condstore = changed_since.is_some()
            || names.contains(&MessageDataItemName::ModSeq)
            || self.state.login().is_some_and(|l| l.condstore);
        if condstore {
            // RFC 7162 §3.1: FETCH MODSEQ and CHANGEDSINCE enable CONDSTORE for the session.
            self.enable_condstore();
        }
        let wants_flags = names.contains(&MessageDataItemName::Flags);
        if condstore && (changed_since.is_some() || wants_flags) && !names.contains(&MessageDataItemName::ModSeq) {
            names.push(MessageDataItemName::ModSeq);
        }
        let Some(selected) = self.state.selected() else { return bad(Some(tag), "select a mailbox first") };
        if !by_uid && render::out_of_range(set, selected.uids.len()) {
            return bad(Some(tag), "no such message");
        }
        let uids = render::resolve(set, &selected.uids, by_uid);
        let ghosts = !by_uid && uids.iter().any(|u| selected.vanished.contains(u));
        let mut sections = Vec::new();
        let mut section_of = Vec::with_capacity(names.len());
        let mut set_seen = false;
        for name in &names {
            let wanted = match name {
                MessageDataItemName::BodyExt { section, partial, peek } => {
                    set_seen |= !peek;
                    Some(section_request(section.as_ref(), *partial))
                }
                MessageDataItemName::Rfc822 => {
                    set_seen = true;
                    Some(section_request(None, None))
                }
                MessageDataItemName::Rfc822Header => Some(section_request(Some(&Section::Header(None)), None)),
                MessageDataItemName::Rfc822Text => {
                    set_seen = true;
                    Some(section_request(Some(&Section::Text(None)), None))
                }
                MessageDataItemName::Binary { section, partial, peek } => {
                    set_seen |= !peek;
                    Some(binary_request(section, *partial))
                }
                MessageDataItemName::BinarySize { section } => Some(binary_request(section, None)),
                _ => None,
            };
            section_of.push(wanted.map(|section| {
                sections.push(section);
                sections.len() - 1
            }));
        }
        let set_seen = set_seen && !selected.read_only;
        if set_seen && !names.contains(&MessageDataItemName::Flags) {
            names.push(MessageDataItemName::Flags);
            section_of.push(None);
        }
        let request = pb::FetchRequest {
            account_id: account_id.get(),
            mailbox: selected.name.clone(),
            uids,
            envelope: names.contains(&MessageDataItemName::Envelope),
            body_structure: names
                .iter()
                .any(|n| matches!(n, MessageDataItemName::Body | MessageDataItemName::BodyStructure)),
            sections,
            changed_since,
            set_seen,
            preview: ids.preview,
        };
        let mut stream = match self.ctx.mailbox.clone().fetch(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => return refusal(tag, &status),
        };
        let mut current: Option<(pb::FetchedMessage, Vec<Vec<u8>>)> = None;
        let mut unknown_cte = false;
        loop {
            let item = match stream.message().await {
                Ok(item) => item,
                Err(status) => return refusal(tag, &status),
            };
            match item.and_then(|i| i.item) {
                Some(pb::fetch_response::Item::MailboxModseq(modseq)) => {
                    if let Some(selected) = self.state.selected() {
                        selected.saw_modseq(modseq);
                    }
                }
                Some(pb::fetch_response::Item::Chunk(chunk)) => {
                    if let Some((_, data)) = current.as_mut()
                        && let Some(section) = data.get_mut(chunk.section as usize)
                    {
                        section.extend_from_slice(&chunk.data);
                    }
                }
                next => {
                    if let Some((message, data)) = current.take() {
                        let raw = self.emit_fetch(&names, &section_of, ids, message, data);
                        if let Err(error) = self.pump().await {
                            tracing::debug!(%error, "client went away during FETCH");
                            return no(tag, None, "connection lost");
                        }
                        if let Some(raw) = raw {
                            self.wire.output.extend_from_slice(&raw);
                        }
                    }
                    match next {
                        Some(pb::fetch_response::Item::Message(message)) => {
                            let count = message.section_sizes.len();
                            unknown_cte |= message.section_sizes.contains(&-2);
                            current = Some((message, vec![Vec::new(); count]));
                        }
                        _ => break,
                    }
                }
            }
        }
        if unknown_cte {
            // RFC 3516 §4.2: a transfer encoding BINARY cannot undo fails the FETCH.
            return no(tag, Some(Code::UnknownCte), "a part's Content-Transfer-Encoding cannot be decoded");
        }
        if ghosts {
            // RFC 5530: the client asked for messages it does not know are gone; the rest were sent.
            return ok(tag, Some(other_code("EXPUNGEISSUED")), "some of the messages were expunged");
        }
        ok(tag, None, "FETCH completed")
    }

    fn emit_fetch(
        &mut self,
        names: &[MessageDataItemName<'static>],
        section_of: &[Option<usize>],
        ids: object_id::ObjectIds,
        message: pb::FetchedMessage,
        mut data: Vec<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        let selected = self.state.selected()?;
        let index = selected.uids.binary_search(&message.uid).ok()?;
        if names.contains(&MessageDataItemName::Flags) {
            announce_new_keywords(selected, &message.flags, &mut self.server);
        }
        let recent = selected.recent.contains(message.uid);
        let mut items = Vec::with_capacity(names.len());
        for (name, section) in names.iter().zip(section_of) {
            let take = |data: &mut Vec<Vec<u8>>| section.map(|i| std::mem::take(&mut data[i])).unwrap_or_default();
            let item = match name {
                MessageDataItemName::Uid => MessageDataItem::Uid(nz(message.uid)),
                MessageDataItemName::Flags => MessageDataItem::Flags(flags_of(&message.flags, recent)),
                MessageDataItemName::InternalDate => {
                    MessageDataItem::InternalDate(render::date_time(message.internal_date_unix))
                }
                MessageDataItemName::Rfc822Size => {
                    MessageDataItem::Rfc822Size(message.size.min(u64::from(u32::MAX)) as u32)
                }
                MessageDataItemName::Envelope => {
                    MessageDataItem::Envelope(render::envelope(&message.envelope.clone().unwrap_or_default()))
                }
                MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
                    let extended = matches!(name, MessageDataItemName::BodyStructure);
                    let structure =
                        render::body_structure(&message.body_structure.clone().unwrap_or_default(), extended);
                    if extended { MessageDataItem::BodyStructure(structure) } else { MessageDataItem::Body(structure) }
                }
                MessageDataItemName::BodyExt { section: wanted, partial, .. } => MessageDataItem::BodyExt {
                    section: wanted.clone(),
                    origin: partial.map(|(start, _)| start),
                    data: render::literal(take(&mut data)),
                },
                MessageDataItemName::Binary { section: part, .. } => {
                    use imap_types::core::{LiteralMode, NString8};
                    use imap_types::extensions::binary::Literal8;
                    let data = take(&mut data);
                    MessageDataItem::Binary {
                        section: part.clone(),
                        value: NString8::Literal8(Literal8 { data: data.into(), mode: LiteralMode::Sync }),
                    }
                }
                MessageDataItemName::BinarySize { section: part } => MessageDataItem::BinarySize {
                    section: part.clone(),
                    size: take(&mut data).len().min(u32::MAX as usize) as u32,
                },
                MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(render::literal(take(&mut data))),
                MessageDataItemName::Rfc822Header => MessageDataItem::Rfc822Header(render::literal(take(&mut data))),
                MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(render::literal(take(&mut data))),
                MessageDataItemName::ModSeq => match NonZeroU64::new(message.modseq) {
                    Some(modseq) => MessageDataItem::ModSeq(modseq),
                    None => continue,
                },
            };
            items.push(item);
        }
        let seq = nz(index as u32 + 1);
        // RFC 3516 §4.2: a partial BINARY names its origin, which imap-types cannot write.
        let origins: Vec<Option<u32>> = names
            .iter()
            .filter_map(|name| match name {
                MessageDataItemName::Binary { partial, .. } => Some(partial.map(|(start, _)| start)),
                _ => None,
            })
            .collect();
        let partial_binary = origins.iter().any(Option::is_some);
        if ids.email || ids.thread || ids.preview || partial_binary {
            // RFC 8474 §5's EMAILID and THREADID and RFC 8970's PREVIEW, which imap-types cannot write,
            // added to what it writes.
            let preview = message.preview.as_deref().unwrap_or_default();
            let added = object_id::fetch_items(ids, message.email_id, message.thread_id, preview);
            return Some(match Vec1::try_from(items) {
                Ok(items) => {
                    let line = ResponseCodec::default().encode(&Response::Data(Data::Fetch { seq, items })).dump();
                    let line = if partial_binary { binary_origin::name_origins(line, &origins) } else { line };
                    if added.is_empty() { line } else { object_id::splice(line, &added) }
                }
                Err(_) => format!("* {seq} FETCH ({added})\r\n").into_bytes(),
            });
        }
        if let Ok(items) = Vec1::try_from(items) {
            self.server.enqueue_data(Data::Fetch { seq, items });
        }
        None
    }
}

/// One STATUS item, by name, of a mailbox's status (RFC 9051 §6.3.11, RFC 8438 SIZE, RFC 7162).
fn status_item(name: &str, status: &pb::MailboxStatus) -> Option<StatusDataItem> {
    Some(match name {
        "MESSAGES" => StatusDataItem::Messages(status.messages),
        "RECENT" => StatusDataItem::Recent(status.recent),
        "UIDNEXT" => StatusDataItem::UidNext(nz(status.uidnext)),
        "UIDVALIDITY" => StatusDataItem::UidValidity(nz(status.uidvalidity)),
        "UNSEEN" => StatusDataItem::Unseen(status.unseen),
        "DELETED" => StatusDataItem::Deleted(status.deleted),
        "SIZE" => StatusDataItem::Size(status.size),
        "HIGHESTMODSEQ" => StatusDataItem::HighestModSeq(status.highest_modseq),
        _ => return None,
    })
}

fn has_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::Not(inner) => has_modseq(inner),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        SearchKey::And(all) => all.as_ref().iter().any(has_modseq),
        _ => false,
    }
}

fn section_request(section: Option<&Section<'_>>, partial: Option<(u32, NonZeroU32)>) -> pb::Section {
    use pb::SectionText as T;
    let part =
        |p: &Option<Part>| p.as_ref().map(|p| p.0.as_ref().iter().map(|n| n.get()).collect()).unwrap_or_default();
    let fields = |list: &Vec1<imap_types::core::AString<'_>>| {
        list.as_ref().iter().map(|f| String::from_utf8_lossy(f.as_ref()).into_owned()).collect()
    };
    let (part, text, fields) = match section {
        None => (Vec::new(), T::Full, Vec::new()),
        Some(Section::Part(p)) => (p.0.as_ref().iter().map(|n| n.get()).collect(), T::Full, Vec::new()),
        Some(Section::Header(p)) => (part(p), T::Header, Vec::new()),
        Some(Section::HeaderFields(p, list)) => (part(p), T::HeaderFields, fields(list)),
        Some(Section::HeaderFieldsNot(p, list)) => (part(p), T::HeaderFieldsNot, fields(list)),
        Some(Section::Text(p)) => (part(p), T::Text, Vec::new()),
        Some(Section::Mime(p)) => (p.0.as_ref().iter().map(|n| n.get()).collect(), T::Mime, Vec::new()),
    };
    pb::Section {
        part,
        text: text.into(),
        fields,
        offset: partial.map(|(start, _)| u64::from(start)),
        length: partial.map(|(_, length)| u64::from(length.get())),
        decode: false,
    }
}

/// RFC 3516 BINARY[part]<partial> and BINARY.SIZE[part]: the part's body, transfer encoding undone.
fn binary_request(part: &[NonZeroU32], partial: Option<(u32, NonZeroU32)>) -> pb::Section {
    pb::Section { part: part.iter().map(|n| n.get()).collect(), decode: true, ..section_request(None, partial) }
}

/// RFC 4315 COPYUID: the target's UIDVALIDITY, then source and target UIDs in corresponding order.
fn copy_uid(uidvalidity: u32, source: &[u32], target: &[u32]) -> Option<Code<'static>> {
    use imap_types::extensions::uidplus::{UidElement, UidSet};
    // Both lists ascend together, so runs compress alike and the correspondence holds.
    let set = |uids: &[u32]| -> Option<UidSet> {
        let mut elements: Vec<UidElement> = Vec::new();
        let mut i = 0;
        while i < uids.len() {
            let start = i;
            while i + 1 < uids.len() && uids[i + 1] == uids[i] + 1 {
                i += 1;
            }
            elements.push(if start == i {
                UidElement::Single(nz(uids[i]))
            } else {
                UidElement::Range(nz(uids[start]), nz(uids[i]))
            });
            i += 1;
        }
        Some(UidSet(Vec1::try_from(elements).ok()?))
    };
    Some(Code::CopyUid { uid_validity: nz(uidvalidity), source: set(source)?, destination: set(target)? })
}

/// Runs `input` through the framer and every command it yields through the session's pure conversions
/// (sequence sets, sections, search keys, mailbox names), as the session would before calling the store.
/// For the robustness test and the fuzz target (`services/access/fuzz`); returns how many commands and
/// how many framing errors there were.
#[doc(hidden)]
pub fn exercise(input: &[u8]) -> (usize, usize) {
    let mut options = Options::default();
    options.crlf_relaxed = true;
    options.max_literal_size = 1024;
    options.max_command_size = 4096;
    let mut server = Server::new(options, Greeting::ok(None, "ready").expect("valid greeting"));
    server.enqueue_input(input);
    let (mut commands, mut errors) = (0, 0);
    for _ in 0..256 {
        match server.next() {
            Ok(Event::CommandReceived { command }) => {
                commands += 1;
                convert(&command.body);
            }
            Ok(Event::CommandAuthenticateReceived { .. }) => {
                let _ = server.authenticate_finish(bad(None, "done"));
            }
            Ok(Event::IdleCommandReceived { .. }) => {
                let _ = server.idle_reject(bad(None, "done"));
            }
            Ok(_) | Err(Interrupt::Io(Io::Output(_))) => {}
            Err(Interrupt::Io(Io::NeedMoreInput)) => break,
            Err(Interrupt::Error(error)) => {
                errors += 1;
                if let FrameError::MalformedMessage { discarded_bytes } = &error
                    && let Some((_, rest)) = render::rewrite_extended(discarded_bytes.declassify())
                    && let Ok((_, command)) = imap_codec::CommandCodec::default().decode(&rest)
                {
                    convert(&command.body);
                }
            }
        }
    }
    (commands, errors)
}

/// Everything the session computes from a command before it calls the store.
fn convert(body: &CommandBody<'_>) {
    let uids: Vec<u32> = vec![1, 2, 5, 9, 4_294_967_295];
    match body {
        CommandBody::Fetch { sequence_set, macro_or_item_names, .. } => {
            let _ = render::resolve(sequence_set, &uids, true);
            let _ = render::resolve(sequence_set, &uids, false);
            let _ = render::out_of_range(sequence_set, uids.len());
            if let MacroOrMessageDataItemNames::MessageDataItemNames(names) = macro_or_item_names {
                for name in names {
                    if let MessageDataItemName::BodyExt { section, partial, .. } = name {
                        let _ = section_request(section.as_ref(), *partial);
                    }
                }
            }
        }
        CommandBody::Search { criteria, .. } => {
            for key in criteria.as_ref() {
                let _ = render::search_key(key, &uids, &uids);
                let _ = has_modseq(key);
            }
        }
        CommandBody::Select { mailbox, .. }
        | CommandBody::Status { mailbox, .. }
        | CommandBody::Copy { mailbox, .. } => {
            for utf8 in [false, true] {
                if let Some(name) = mailbox_name_in(mailbox, utf8) {
                    let _ = wire_mailbox_in(&name, utf8);
                }
            }
        }
        CommandBody::List { mailbox_wildcard: ListMailbox::String(s), .. } => {
            let _ = render::from_utf7(&String::from_utf8_lossy(s.as_ref()));
        }
        CommandBody::Store { sequence_set, .. } | CommandBody::ExpungeUid { sequence_set } => {
            let text = render::uid_set_text(&render::resolve(sequence_set, &uids, true));
            let _ = SequenceSet::try_from(text.as_str());
        }
        _ => {}
    }
}

#[cfg(test)]
mod robustness {
    //! The session's pure layer fed what a hostile or broken client sends: valid commands cut, spliced
    //! and mutated byte by byte (a deterministic generator, so a failure reproduces). Every input must
    //! come out of imap-next as a command or an error, and every command through our conversions,
    //! without a panic.

    use super::*;

    const SEEDS: &[&[u8]] = &[
        b"a1 UID FETCH 1:*,4294967295:3 (UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (Subject From)]<0.100> BODYSTRUCTURE MODSEQ) (CHANGEDSINCE 5 VANISHED)\r\n",
        b"a2 SEARCH CHARSET UTF-8 OR (FROM \"x\" SINCE 1-Jan-2026) NOT (UID 1:* LARGER 5 HEADER Subject \"%_\") MODSEQ 7 1,3:*\r\n",
        b"a3 STORE 1:* +FLAGS.SILENT (\\Seen $Work) (UNCHANGEDSINCE 0)\r\n",
        b"a4 SELECT &AOQ-&APw-/Sub (QRESYNC (1 2 1:9))\r\n",
        b"a5 APPEND INBOX (\\Seen) \"01-Jan-2026 00:00:00 +0000\" {5+}\r\nhello\r\n",
        b"a6 LIST \"\" \"%/&2D3eAA-*\"\r\n",
        b"a7 COPY 2:1 \"Tr&-ash\"\r\n",
        b"a8 STATUS INBOX (MESSAGES UIDNEXT SIZE HIGHESTMODSEQ)\r\n",
        b"a9 FETCH 1 (BODY[] BODY[TEXT]<4294967295.4294967295> RFC822 RFC822.HEADER)\r\n",
    ];

    /// xorshift64*: small, deterministic, good enough to scramble bytes.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng) -> Vec<u8> {
        let mut input = SEEDS[rng.below(SEEDS.len())].to_vec();
        for _ in 0..rng.below(4) {
            match rng.below(4) {
                0 if !input.is_empty() => {
                    let i = rng.below(input.len());
                    input[i] = b"0123456789*:,()[]<>{}+\"\\ \r\n%&-~.\x00\xff"[rng.below(34)];
                }
                1 if !input.is_empty() => {
                    let (a, b) = (rng.below(input.len()), rng.below(input.len()));
                    input.drain(a.min(b)..a.max(b));
                }
                2 => {
                    let other = SEEDS[rng.below(SEEDS.len())];
                    let at = rng.below(input.len() + 1);
                    let piece = &other[rng.below(other.len())..];
                    input.splice(at..at, piece.iter().copied());
                }
                _ => input.extend_from_slice(b"\r\n"),
            }
        }
        input
    }

    #[test]
    fn mutated_commands_never_panic_the_framer_or_the_conversions() {
        let mut rng = Rng(0x5eed_1234_abcd_0042);
        let (mut commands, mut errors) = (0, 0);
        for _ in 0..3_000 {
            let (c, e) = exercise(&mutate(&mut rng));
            commands += c;
            errors += e;
        }
        // Both kinds occur, so the generator exercises the conversions and the error paths alike.
        assert!(commands > 100 && errors > 100, "{commands} commands, {errors} errors");
    }
}

#[cfg(test)]
mod tests {
    use super::spell_imap4rev1;

    #[test]
    fn imap4rev1_is_spelled_as_rfc_3501_does_in_capability_lists_only() {
        for (from, to) in [
            (&b"* OK [CAPABILITY IMAP4REV1 IDLE] ready\r\n"[..], &b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n"[..]),
            (b"* CAPABILITY IMAP4REV1 LITERAL+\r\n", b"* CAPABILITY IMAP4rev1 LITERAL+\r\n"),
            (
                b"a1 OK [CAPABILITY IMAP4REV1 UIDPLUS] logged in\r\n",
                b"a1 OK [CAPABILITY IMAP4rev1 UIDPLUS] logged in\r\n",
            ),
            // Anything else, message data included, is left as it is.
            (
                b"* 1 FETCH (BODY[] {20}\r\nCAPABILITY IMAP4REV1)\r\n",
                b"* 1 FETCH (BODY[] {20}\r\nCAPABILITY IMAP4REV1)\r\n",
            ),
            (b"* OK IMAP4REV1\r\n", b"* OK IMAP4REV1\r\n"),
            (b"*", b"*"),
        ] {
            let mut frame = from.to_vec();
            spell_imap4rev1(&mut frame);
            assert_eq!(frame, to, "{}", String::from_utf8_lossy(from));
        }
    }
}
