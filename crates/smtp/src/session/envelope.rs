//! What a transaction collects: who the client said it was, the sender, the recipients, and finally the
//! [`Message`] handed over to be made durable with its body.

use mailbus_address::EmailAddress;

use super::{AuthenticatedUser, TlsInfo};

/// What the client called itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helo {
    pub name: String,
    /// EHLO rather than HELO: the client may use extensions.
    pub extended: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    /// `MAIL FROM:<>`: bounces and other notifications, which must never themselves be bounced.
    Null,
    Address(EmailAddress),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
}

/// RFC 3461 RET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnReturn {
    Full,
    Headers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: EmailAddress,
    /// RFC 3461 NOTIFY bits as smtp-proto encodes them (`RCPT_NOTIFY_*`); 0 when NOTIFY was not given.
    pub notify: u64,
    /// RFC 3461 ORCPT, the address after `rfc822;`, xtext-decoded.
    pub orcpt: Option<String>,
    /// The directory called the address ours. `false`: accepted for relaying from an authenticated session.
    pub local: bool,
}

/// Everything `MAIL` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    pub path: ReversePath,
    pub body_type: BodyType,
    /// RFC 6531: the client asked for SMTPUTF8, so the envelope and headers may be UTF-8.
    pub smtputf8: bool,
    /// RFC 3461 ENVID, xtext-decoded.
    pub env_id: Option<String>,
    pub ret: Option<DsnReturn>,
}

/// A message whose body has arrived and that now needs to be made durable: its envelope and the session's
/// facts. The body is not here: the connection kept what the readers handed out (unstuffed, with CRLF line
/// endings), wherever a body of its size is best kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub helo: Helo,
    pub from: MailFrom,
    pub recipients: Vec<Recipient>,
    /// The session's TLS, for `Received:` (RFC 5321 §4.4, RFC 8314 §4.3).
    pub tls: Option<TlsInfo>,
    /// Who authenticated, for `Received:` and the envelope.
    pub authenticated: Option<AuthenticatedUser>,
}
