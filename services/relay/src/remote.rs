//! Delivering one message to one remote domain over SMTP (RFC 5321): try each hop in order; EHLO (HELO if
//! refused); STARTTLS when offered (opportunistic, RFC 7435); MAIL with BODY=8BITMIME and SMTPUTF8 as the
//! message needs and the peer allows, a 7-bit downgrade for peers without 8BITMIME (RFC 6152 §3); RCPT for
//! each recipient, whose replies are the recipients' outcomes; then DATA.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mail_send::SmtpClient;
use mail_send::smtp::message::Parameters;
use smtp_proto::{EXT_8BIT_MIME, EXT_DSN, EXT_PIPELINING, EXT_SMTP_UTF8, EXT_START_TLS, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::delivery::Outcome;
use crate::downgrade;
use crate::routing::{Hop, NoRoute, Router};
use crate::signing::{DomainKeys, Sealer};

pub struct Remote {
    router: Router,
    /// Connections at once to one destination domain, so a big mailing does not flood one peer
    /// (Postfix's `default_destination_concurrency_limit`).
    per_destination: usize,
    slots: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>,
    /// Open, greeted connections kept a few seconds for the next message to the same hop.
    cache: std::sync::Mutex<std::collections::HashMap<(String, u16), Vec<Cached>>>,
    tls: TlsConnector,
    /// Our name in EHLO.
    hostname: String,
    /// Each command's reply, RFC 5321 §4.5.3.2 (minutes there; configurable for tests).
    timeout: Duration,
}

/// One recipient as the next hop should see it.
pub struct RemoteRecipient {
    pub address: String,
    /// RFC 3461 NOTIFY bits (smtp-proto's encoding); 0 when not given.
    pub notify: u32,
    pub orcpt: String,
}

/// What the message needs from a peer.
pub struct Outgoing<'a> {
    pub from: &'a str,
    pub recipients: &'a [RemoteRecipient],
    pub body: &'a [u8],
    pub smtputf8: bool,
    /// RFC 3461 ENVID and RET, passed on to peers that speak DSN.
    pub envid: &'a str,
    pub ret: Option<&'static str>,
    /// The keys to sign with, if the message is to be signed.
    pub dkim: Option<&'a DomainKeys>,
    /// The keys to ARC-seal with, and the sealer, for a copy an alias forwards.
    pub arc: Option<(&'a DomainKeys, &'a Sealer)>,
}

impl Remote {
    pub fn new(router: Router, hostname: String, timeout: Duration, per_destination: usize) -> Self {
        Remote {
            router,
            per_destination: per_destination.max(1),
            slots: Default::default(),
            cache: Default::default(),
            tls: TlsConnector::from(mailbus_tls::opportunistic_client_config()),
            hostname,
            timeout,
        }
    }

    fn slots(&self, domain: &str) -> std::sync::Arc<tokio::sync::Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots
            .entry(domain.to_owned())
            .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_destination)))
            .clone()
    }

    /// Delivers to every recipient (all of one domain); one outcome per recipient, in order.
    pub async fn deliver(&self, domain: &str, message: &Outgoing<'_>) -> Vec<Outcome> {
        let all = |outcome: Outcome| vec![outcome; message.recipients.len()];
        let slots = self.slots(domain);
        let Ok(_slot) = slots.acquire().await else {
            return all(Outcome::TemporaryFailure("4.3.0 relay shutting down".into()));
        };
        let hops = match self.router.hops(domain).await {
            Ok(hops) => hops,
            Err(NoRoute::NoSuchDomain) => {
                return all(Outcome::PermanentFailure(format!("5.1.2 domain {domain} does not exist")));
            }
            Err(NoRoute::NullMx) => {
                return all(Outcome::PermanentFailure(format!("5.1.10 {domain} accepts no mail (null MX)")));
            }
            Err(NoRoute::Lookup(error)) => {
                return all(Outcome::TemporaryFailure(format!("4.4.3 DNS lookup for {domain} failed: {error}")));
            }
        };
        let mut last = Outcome::TemporaryFailure(format!("4.4.1 no host for {domain} answered"));
        for hop in hops {
            match self.try_hop(&hop, message).await {
                Ok(outcomes) => return outcomes,
                Err(reason) => {
                    tracing::info!(host = %hop.host, port = hop.port, %reason, "hop failed, trying the next");
                    last = Outcome::TemporaryFailure(format!("4.4.1 {}:{}: {reason}", hop.host, hop.port));
                }
            }
        }
        all(last)
    }

    /// `Err` means this hop could not take the message at all (connection, greeting, EHLO, MAIL
    /// temporarily): the next hop is tried. Per-recipient and DATA replies are outcomes. A connection left
    /// by an earlier message to the same hop is used first; if it turns out to be dead, a new one is opened.
    async fn try_hop(&self, hop: &Hop, message: &Outgoing<'_>) -> Result<Vec<Outcome>, String> {
        if let Some(mut cached) = self.take_cached(hop) {
            match self.transaction(&mut cached.client, &cached.ehlo, message).await {
                Transaction::Done { outcomes, reusable } => {
                    self.finish(hop, cached, reusable).await;
                    return Ok(outcomes);
                }
                Transaction::Stale => tracing::debug!(host = %hop.host, "cached connection was closed, reconnecting"),
            }
        }
        let mut fresh = match self.connect(hop, true).await {
            Ok(fresh) => fresh,
            // RFC 7435: opportunistic TLS that fails falls back to the clear, as Postfix's "may" level does;
            // a peer with a broken TLS stack must still get its mail.
            Err(Connect::Tls(reason)) => {
                tracing::info!(host = %hop.host, %reason, "STARTTLS failed, retrying without TLS");
                self.connect(hop, false).await.map_err(Connect::into_reason)?
            }
            Err(other) => return Err(other.into_reason()),
        };
        match self.transaction(&mut fresh.client, &fresh.ehlo, message).await {
            Transaction::Done { outcomes, reusable } => {
                self.finish(hop, fresh, reusable).await;
                Ok(outcomes)
            }
            Transaction::Stale => Err("connection lost before MAIL was answered".into()),
        }
    }

    async fn connect(&self, hop: &Hop, try_tls: bool) -> Result<Cached, Connect> {
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect((hop.host.as_str(), hop.port)))
            .await
            .map_err(|_| Connect::Other("connection timed out".to_owned()))?
            .map_err(|e| Connect::Other(e.to_string()))?;
        let mut client = SmtpClient { stream: ClientStream::Plain(stream), timeout: self.timeout };
        let greeting = tokio::time::timeout(self.timeout, client.read())
            .await
            .map_err(|_| Connect::Other("no greeting".to_owned()))?
            .map_err(|e| Connect::Other(e.to_string()))?;
        if greeting.code != 220 {
            return Err(Connect::Other(format!("greeting {}", reply_text(&greeting))));
        }
        let mut ehlo = self.hello(&mut client).await.map_err(Connect::Other)?;
        if try_tls && ehlo.has_capability(EXT_START_TLS) {
            let reply = client.cmd(b"STARTTLS\r\n").await.map_err(|e| Connect::Other(e.to_string()))?;
            if reply.code == 220 {
                tokio::time::timeout(self.timeout, client.stream.upgrade(&self.tls, &hop.host))
                    .await
                    .map_err(|_| Connect::Tls("handshake timed out".to_owned()))?
                    .map_err(|e| Connect::Tls(e.to_string()))?;
                ehlo = self.hello(&mut client).await.map_err(Connect::Other)?;
            }
        }
        Ok(Cached { client, ehlo, idle_since: Instant::now() })
    }

    /// Keeps a healthy connection for the next message (up to the destination's concurrency), or says
    /// goodbye.
    async fn finish(&self, hop: &Hop, mut connection: Cached, reusable: bool) {
        if reusable {
            connection.idle_since = Instant::now();
            let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let idle = cache.entry((hop.host.clone(), hop.port)).or_default();
            if idle.len() < self.per_destination {
                idle.push(connection);
                return;
            }
        }
        let _ = connection.client.quit().await;
    }

    fn take_cached(&self, hop: &Hop) -> Option<Cached> {
        let mut cache = self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let idle = cache.get_mut(&(hop.host.clone(), hop.port))?;
        // Older ones are dropped (closed): the peer may be about to time them out.
        idle.retain(|c| c.idle_since.elapsed() < REUSE_WINDOW);
        idle.pop()
    }

    async fn hello(&self, client: &mut SmtpClient<ClientStream>) -> Result<smtp_proto::EhloResponse<String>, String> {
        match client.ehlo(&self.hostname).await {
            Ok(ehlo) => Ok(ehlo),
            Err(mail_send::Error::UnexpectedReply(_)) => {
                // RFC 5321 §3.2: an old server that refuses EHLO gets HELO, and no extensions.
                let reply = client.cmd(format!("HELO {}\r\n", self.hostname)).await.map_err(|e| e.to_string())?;
                if reply.code != 250 {
                    return Err(format!("HELO refused: {}", reply_text(&reply)));
                }
                Ok(smtp_proto::EhloResponse { hostname: String::new(), capabilities: 0, ..Default::default() })
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn transaction(
        &self,
        client: &mut SmtpClient<ClientStream>,
        ehlo: &smtp_proto::EhloResponse<String>,
        message: &Outgoing<'_>,
    ) -> Transaction {
        let all =
            |outcome: Outcome| Transaction::Done { outcomes: vec![outcome; message.recipients.len()], reusable: true };
        // RFC 6531 §3.2: without SMTPUTF8 at the peer, a message that needs it (UTF-8 sender or headers)
        // fails for everyone, and a UTF-8 recipient address fails alone.
        let utf8_peer = ehlo.has_capability(EXT_SMTP_UTF8);
        let mut early: Vec<Option<Outcome>> = vec![None; message.recipients.len()];
        if message.smtputf8 && !utf8_peer {
            let header_end = message.body.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(message.body.len());
            if !message.from.is_ascii() || downgrade::is_eight_bit(&message.body[..header_end]) {
                return all(Outcome::PermanentFailure("5.6.7 the receiving server does not support SMTPUTF8".into()));
            }
            for (slot, recipient) in early.iter_mut().zip(message.recipients) {
                if !recipient.address.is_ascii() {
                    *slot =
                        Some(Outcome::PermanentFailure("5.6.7 the receiving server does not support SMTPUTF8".into()));
                }
            }
        }
        let eight_bit = downgrade::is_eight_bit(message.body);
        let downgraded;
        let body = if eight_bit && !ehlo.has_capability(EXT_8BIT_MIME) {
            match downgrade::to_seven_bit(message.body) {
                Some(seven_bit) => {
                    downgraded = seven_bit;
                    downgraded.as_slice()
                }
                None => {
                    return all(Outcome::PermanentFailure(
                        "5.6.3 conversion to 7 bit required but not possible".into(),
                    ));
                }
            }
        } else {
            message.body
        };
        let dsn_peer = ehlo.has_capability(EXT_DSN);
        let mut params = Parameters::new();
        if eight_bit && ehlo.has_capability(EXT_8BIT_MIME) && body.len() == message.body.len() {
            params.add("BODY=8BITMIME");
        }
        if message.smtputf8 && utf8_peer {
            params.add("SMTPUTF8");
        }
        if dsn_peer {
            // RFC 3461 §4: the sender's DSN requests travel on with the message.
            if let Some(ret) = message.ret {
                params.add(format!("RET={ret}"));
            }
            if !message.envid.is_empty() {
                params.add(format!("ENVID={}", xtext(message.envid)));
            }
        }
        let mail_from = format!("MAIL FROM:<{}>{params}\r\n", message.from);
        let sending: Vec<&RemoteRecipient> =
            message.recipients.iter().zip(&early).filter(|(_, e)| e.is_none()).map(|(r, _)| r).collect();
        if sending.is_empty() {
            return Transaction::Done { outcomes: early.into_iter().flatten().collect(), reusable: true };
        }
        let rcpts: Vec<String> = sending.iter().map(|r| rcpt_command(r, dsn_peer)).collect();
        let replies = if ehlo.has_capability(EXT_PIPELINING) {
            // RFC 2920: MAIL and every RCPT in one write, then their replies in order.
            pipelined(client, &mail_from, &rcpts).await
        } else {
            one_by_one(client, &mail_from, &rcpts).await
        };
        let (mail, rcpt_replies) = match replies {
            Ok(replies) => replies,
            // Nothing was answered: the connection is gone (a cached one may simply have timed out).
            Err(_) => return Transaction::Stale,
        };
        if mail.code / 100 != 2 {
            let _ = client.rset().await;
            let refused = outcome_of(&mail);
            let outcomes = early.into_iter().map(|e| e.unwrap_or_else(|| refused.clone())).collect();
            return Transaction::Done { outcomes, reusable: true };
        }
        let mut replies = rcpt_replies.iter().map(|reply| (reply.code / 100 != 2).then(|| outcome_of(reply)));
        let outcomes: Vec<Option<Outcome>> =
            early.into_iter().map(|e| e.or_else(|| replies.next().flatten())).collect();
        if outcomes.iter().all(Option::is_some) {
            let reusable = client.rset().await.is_ok();
            return Transaction::Done { outcomes: outcomes.into_iter().flatten().collect(), reusable };
        }
        // Signed last, over the octets as they go out (after any 7-bit downgrade), as Postfix's milters
        // see them: a signature made before a conversion would not verify at the peer.
        let signed = message.dkim.map(|keys| [keys.sign(body).as_slice(), body].concat());
        let body = signed.as_deref().unwrap_or(body);
        // The seal comes after the signature and covers it (its AMS signs DKIM-Signature too), as
        // OpenARC runs after OpenDKIM.
        let sealed = match message.arc {
            Some((keys, sealer)) => Some([sealer.seal(keys, body).await.as_slice(), body].concat()),
            None => None,
        };
        let body = sealed.as_deref().unwrap_or(body);
        let (data, reusable) = match send_data(client, body).await {
            Ok(reply) if reply.code / 100 == 2 => (Outcome::Relayed { dsn_passed_on: dsn_peer }, true),
            Ok(reply) => (outcome_of(&reply), true),
            Err(e) => (Outcome::TemporaryFailure(format!("4.4.2 {e}")), false),
        };
        Transaction::Done {
            outcomes: outcomes.into_iter().map(|o| o.unwrap_or_else(|| data.clone())).collect(),
            reusable,
        }
    }
}

/// `RCPT TO:<…>`, with NOTIFY and ORCPT for a peer that speaks DSN.
fn rcpt_command(recipient: &RemoteRecipient, dsn_peer: bool) -> String {
    let mut command = format!("RCPT TO:<{}>", recipient.address);
    if dsn_peer {
        const NAMES: [(u32, &str); 3] = [(1, "SUCCESS"), (2, "FAILURE"), (4, "DELAY")];
        if recipient.notify & 8 != 0 {
            command.push_str(" NOTIFY=NEVER");
        } else if recipient.notify != 0 {
            let names: Vec<&str> =
                NAMES.iter().filter(|(bit, _)| recipient.notify & bit != 0).map(|(_, n)| *n).collect();
            command.push_str(&format!(" NOTIFY={}", names.join(",")));
        }
        let original = if recipient.orcpt.is_empty() { recipient.address.as_str() } else { recipient.orcpt.as_str() };
        let original = original.split_once(';').map_or(original, |(_, address)| address);
        command.push_str(&format!(" ORCPT=rfc822;{}", xtext(original)));
    }
    command.push_str("\r\n");
    command
}

/// RFC 3461 §4 xtext: printable ASCII except "+" and "=", the rest as "+XX".
fn xtext(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
                (b as char).to_string()
            } else {
                format!("+{b:02X}")
            }
        })
        .collect()
}

/// Why a connection could not be set up.
enum Connect {
    /// The STARTTLS handshake failed: worth trying again in the clear.
    Tls(String),
    Other(String),
}

impl Connect {
    fn into_reason(self) -> String {
        match self {
            Connect::Tls(reason) => format!("TLS: {reason}"),
            Connect::Other(reason) => reason,
        }
    }
}

/// A greeted connection and what its server offered.
struct Cached {
    client: SmtpClient<ClientStream>,
    ehlo: smtp_proto::EhloResponse<String>,
    idle_since: Instant,
}

/// How long an idle connection is kept for the next message to the same hop (Postfix keeps them 2 s).
const REUSE_WINDOW: Duration = Duration::from_secs(5);

enum Transaction {
    Done {
        outcomes: Vec<Outcome>,
        reusable: bool,
    },
    /// The connection was dead before the envelope was answered; nothing was sent.
    Stale,
}

type EnvelopeReplies = (Response<String>, Vec<Response<String>>);

async fn pipelined(
    client: &mut SmtpClient<ClientStream>,
    mail: &str,
    rcpts: &[String],
) -> mail_send::Result<EnvelopeReplies> {
    use tokio::io::AsyncWriteExt;
    let batch: String = std::iter::once(mail).chain(rcpts.iter().map(String::as_str)).collect();
    tokio::time::timeout(client.timeout, async {
        client.stream.write_all(batch.as_bytes()).await?;
        client.stream.flush().await
    })
    .await
    .map_err(|_| mail_send::Error::Timeout)??;
    // One read may carry several replies: read them together (a lone `read` would drop the rest).
    let mut replies = tokio::time::timeout(client.timeout, client.read_many(1 + rcpts.len()))
        .await
        .map_err(|_| mail_send::Error::Timeout)??
        .into_iter();
    let mail = replies.next().ok_or(mail_send::Error::UnparseableReply)?;
    let replies: Vec<Response<String>> = replies.collect();
    Ok((mail, replies))
}

async fn one_by_one(
    client: &mut SmtpClient<ClientStream>,
    mail: &str,
    rcpts: &[String],
) -> mail_send::Result<EnvelopeReplies> {
    let mail = client.cmd(mail).await?;
    let mut replies = Vec::with_capacity(rcpts.len());
    if mail.code / 100 == 2 {
        for rcpt in rcpts {
            replies.push(client.cmd(rcpt.as_str()).await?);
        }
    }
    Ok((mail, replies))
}

/// DATA, the body with dot-stuffing (RFC 5321 §4.5.2), and the end mark. (mail-send's own `data` adds a
/// CRLF even to a body that ends in one, which would change the message.)
async fn send_data(client: &mut SmtpClient<ClientStream>, body: &[u8]) -> mail_send::Result<Response<String>> {
    use tokio::io::AsyncWriteExt;
    let go_ahead = client.cmd(b"DATA\r\n").await?;
    if go_ahead.code != 354 {
        return Ok(go_ahead);
    }
    let mut wire = Vec::with_capacity(body.len() + body.len() / 64 + 5);
    let mut line_start = true;
    for &b in body {
        if line_start && b == b'.' {
            wire.push(b'.');
        }
        wire.push(b);
        line_start = b == b'\n';
    }
    if !body.ends_with(b"\r\n") {
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b".\r\n");
    tokio::time::timeout(client.timeout, async {
        client.stream.write_all(&wire).await?;
        client.stream.flush().await?;
        client.read().await
    })
    .await
    .map_err(|_| mail_send::Error::Timeout)?
}

fn reply_text(reply: &Response<String>) -> String {
    let [a, b, c] = reply.esc;
    if a == 0 {
        format!("{} {}", reply.code, reply.message)
    } else {
        format!("{} {a}.{b}.{c} {}", reply.code, reply.message)
    }
}

/// A refusal's class decides: 4yz is worth retrying, 5yz is not (RFC 5321 §4.2.1).
fn outcome_of(reply: &Response<String>) -> Outcome {
    let text = reply_text(reply);
    if reply.code >= 500 { Outcome::PermanentFailure(text) } else { Outcome::TemporaryFailure(text) }
}

/// The client side of an SMTP connection, plain until STARTTLS upgrades it in place.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Only while the handshake runs, or after it failed.
    Closed,
}

impl ClientStream {
    async fn upgrade(&mut self, tls: &TlsConnector, host: &str) -> std::io::Result<()> {
        let ClientStream::Plain(stream) = std::mem::replace(self, ClientStream::Closed) else {
            return Err(std::io::ErrorKind::InvalidInput.into());
        };
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .unwrap_or_else(|_| rustls_pki_types::ServerName::try_from("invalid.invalid").expect("a valid name"));
        *self = ClientStream::Tls(Box::new(tls.connect(name, stream).await?));
        Ok(())
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "connection closed after a failed TLS handshake")
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            ClientStream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            ClientStream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            ClientStream::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            ClientStream::Closed => Poll::Ready(Ok(())),
        }
    }
}
