//! The SMTP session state machine (RFC 5321 §4.1.4, §3.3).
//!
//! The state is an enum whose variants carry only what is valid in them: there is no sender before
//! `MAIL`, and no `DATA` without at least one accepted recipient, because no variant could hold it. The
//! session never does I/O: it answers a command with an [`Action`], and the connection task carries the
//! action out and reports back (the recipient's verdict, the body, the enqueue result).

use std::mem;

use mailbus_address::EmailAddress;
use smtp_proto::{MAIL_BODY_8BITMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, Request};

use crate::command::{Command, CommandError};
use crate::data::DataProgress;
use crate::reply::{Enhanced, Reply};

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The name we greet with and put in `Received:`.
    pub hostname: String,
    /// RFC 1870 SIZE, in octets.
    pub max_message_size: usize,
    /// RFC 5321 §4.5.3.1.8 asks for at least 100.
    pub max_recipients: usize,
}

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
    /// RFC 3461 NOTIFY bits as smtp-proto encodes them.
    pub notify: u64,
    /// RFC 3461 ORCPT.
    pub orcpt: Option<String>,
}

/// Everything `MAIL` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    pub path: ReversePath,
    pub body_type: BodyType,
    pub smtputf8: bool,
    pub env_id: Option<String>,
    pub ret: Option<DsnReturn>,
}

/// A message whose body has arrived and that now needs to be made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub helo: Helo,
    pub from: MailFrom,
    pub recipients: Vec<Recipient>,
    pub body: Vec<u8>,
}

/// The directory's answer about one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Local,
    UnknownUser,
    /// The domain is not ours and this session may not relay.
    RelayDenied,
    /// The directory could not be asked.
    Unavailable,
}

/// A recipient waiting for the directory's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientCheck {
    pub recipient: Recipient,
}

/// What the connection must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reply(Reply),
    /// Ask the directory, then call [`Session::recipient_checked`].
    CheckRecipient(RecipientCheck),
    /// Send the 354 reply, read the body with a `DataReader`, then call [`Session::data_received`].
    ReceiveData(Reply),
    /// Send the reply and close the connection.
    Close(Reply),
}

/// What to do with a body that has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// Make it durable, then call [`Session::queued`] or [`Session::not_queued`].
    Enqueue(Message),
    Reply(Reply),
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Connected,
    Greeted {
        helo: Helo,
    },
    Mail {
        helo: Helo,
        from: MailFrom,
    },
    Rcpt {
        helo: Helo,
        from: MailFrom,
        recipients: Vec<Recipient>,
    },
}

#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Session { config, state: State::Connected }
    }

    /// The 220 banner (RFC 5321 §4.3.1).
    pub fn greeting(&self) -> Reply {
        Reply::plain(220, vec![format!("{} ESMTP mailbus", self.config.hostname)])
    }

    pub fn handle(&mut self, command: Result<Command, CommandError>) -> Action {
        let command = match command {
            Ok(command) => command,
            Err(error) => return Action::Reply(command_error(error)),
        };
        match command {
            Request::Ehlo { host } => Action::Reply(self.hello(host, true)),
            Request::Helo { host } => Action::Reply(self.hello(host, false)),
            Request::Mail { from } => Action::Reply(self.mail(from)),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Rset => {
                self.reset_transaction();
                Action::Reply(Reply::ok("Ok"))
            }
            Request::Noop { .. } => Action::Reply(Reply::ok("Ok")),
            // RFC 5321 §3.5.3: 252 says "cannot verify, will try"; it tells a harvester nothing.
            Request::Vrfy { .. } => Action::Reply(Reply::new(
                252,
                Enhanced(2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => Action::Reply(Reply::new(214, Enhanced(2, 0, 0), "See RFC 5321")),
            Request::Quit => Action::Close(Reply::new(221, Enhanced(2, 0, 0), "Bye")),
            other => {
                Action::Reply(Reply::new(502, Enhanced(5, 5, 1), format!("{} command not implemented", other.name())))
            }
        }
    }

    fn hello(&mut self, host: String, extended: bool) -> Reply {
        // RFC 5321 §4.1.4: EHLO or HELO in the middle of a transaction also resets it.
        self.state = State::Greeted { helo: Helo { name: host.clone(), extended } };
        let first = format!("{} Hello {host}", self.config.hostname);
        if !extended {
            return Reply::plain(250, vec![first]);
        }
        Reply::plain(
            250,
            vec![
                first,
                "PIPELINING".into(),
                format!("SIZE {}", self.config.max_message_size),
                "8BITMIME".into(),
                "ENHANCEDSTATUSCODES".into(),
            ],
        )
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Reply {
        let helo = match mem::take(&mut self.state) {
            State::Greeted { helo } => helo,
            State::Connected => return bad_sequence("send HELO or EHLO first"),
            nested @ (State::Mail { .. } | State::Rcpt { .. }) => {
                self.state = nested;
                return bad_sequence("nested MAIL command");
            }
        };
        let reply = match parse_mail_from(&from, &helo, self.config.max_message_size) {
            Ok(parsed) => {
                self.state = State::Mail { helo, from: parsed };
                return Reply::new(250, Enhanced(2, 1, 0), "Ok");
            }
            Err(reply) => reply,
        };
        self.state = State::Greeted { helo };
        reply
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Action {
        let count = match &self.state {
            State::Mail { .. } => 0,
            State::Rcpt { recipients, .. } => recipients.len(),
            State::Connected | State::Greeted { .. } => return Action::Reply(bad_sequence("need MAIL command")),
        };
        if count >= self.config.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest in a later transaction.
            return Action::Reply(Reply::new(452, Enhanced(4, 5, 3), "Too many recipients"));
        }
        let address = match to.address.parse::<EmailAddress>() {
            Ok(address) => address,
            Err(error) => {
                return Action::Reply(Reply::new(501, Enhanced(5, 1, 3), format!("Bad recipient address: {error}")));
            }
        };
        Action::CheckRecipient(RecipientCheck { recipient: Recipient { address, notify: to.flags, orcpt: to.orcpt } })
    }

    /// Takes the directory's verdict on a recipient that [`Action::CheckRecipient`] asked about.
    pub fn recipient_checked(&mut self, check: RecipientCheck, verdict: Verdict) -> Reply {
        let address = check.recipient.address.to_string();
        match verdict {
            Verdict::Local => {}
            Verdict::UnknownUser => {
                return Reply::new(
                    550,
                    Enhanced(5, 1, 1),
                    format!("<{address}>: Recipient address rejected: User unknown"),
                );
            }
            Verdict::RelayDenied => {
                return Reply::new(554, Enhanced(5, 7, 1), format!("<{address}>: Relay access denied"));
            }
            Verdict::Unavailable => {
                return Reply::new(451, Enhanced(4, 3, 0), "Recipient lookup failed, try again later");
            }
        }
        self.state = match mem::take(&mut self.state) {
            State::Mail { helo, from } => State::Rcpt { helo, from, recipients: vec![check.recipient] },
            State::Rcpt { helo, from, mut recipients } => {
                // The same recipient twice gets one copy.
                if !recipients.iter().any(|r| r.address.lookup_key() == check.recipient.address.lookup_key()) {
                    recipients.push(check.recipient);
                }
                State::Rcpt { helo, from, recipients }
            }
            // A verdict after RSET or a new EHLO concerns a transaction that no longer exists.
            other => {
                self.state = other;
                return bad_sequence("need MAIL command");
            }
        };
        Reply::new(250, Enhanced(2, 1, 5), "Ok")
    }

    fn data(&mut self) -> Action {
        match &self.state {
            State::Rcpt { .. } => {
                Action::ReceiveData(Reply::plain(354, vec!["End data with <CR><LF>.<CR><LF>".into()]))
            }
            // RFC 5321 §3.3: with no valid recipient, DATA gets 554 (or 503).
            State::Mail { .. } => Action::Reply(Reply::new(554, Enhanced(5, 5, 1), "No valid recipients")),
            State::Connected | State::Greeted { .. } => Action::Reply(bad_sequence("need RCPT command")),
        }
    }

    /// The size limit the connection's `DataReader` must enforce.
    pub fn max_message_size(&self) -> usize {
        self.config.max_message_size
    }

    pub fn hostname(&self) -> &str {
        &self.config.hostname
    }

    /// Takes the outcome of reading the body. Either way the transaction is over.
    pub fn data_received(&mut self, progress: DataProgress) -> DataOutcome {
        let (helo, from, recipients) = match mem::take(&mut self.state) {
            State::Rcpt { helo, from, recipients } => (helo, from, recipients),
            other => {
                self.state = other;
                return DataOutcome::Reply(bad_sequence("need RCPT command"));
            }
        };
        self.state = State::Greeted { helo: helo.clone() };
        match progress {
            DataProgress::Complete(body) => DataOutcome::Enqueue(Message { helo, from, recipients, body }),
            DataProgress::TooLarge => DataOutcome::Reply(too_large()),
            DataProgress::Incomplete => DataOutcome::Reply(Reply::new(451, Enhanced(4, 3, 0), "Incomplete message")),
        }
    }

    /// RFC 5321 §4.2.5: 250 only once the message is safe.
    pub fn queued(&self, queue_id: &str) -> Reply {
        Reply::ok(format!("Ok: queued as {queue_id}"))
    }

    /// The message could not be made durable; the client keeps it and tries again.
    pub fn not_queued(&self) -> Reply {
        Reply::new(451, Enhanced(4, 3, 0), "Queue unavailable, try again later")
    }

    fn reset_transaction(&mut self) {
        self.state = match mem::take(&mut self.state) {
            State::Connected => State::Connected,
            State::Greeted { helo } | State::Mail { helo, .. } | State::Rcpt { helo, .. } => State::Greeted { helo },
        };
    }
}

fn parse_mail_from(from: &smtp_proto::MailFrom<String>, helo: &Helo, max_size: usize) -> Result<MailFrom, Reply> {
    if !helo.extended && from.flags != 0 {
        return Err(Reply::new(555, Enhanced(5, 5, 4), "MAIL parameters need EHLO"));
    }
    if from.flags & MAIL_SMTPUTF8 != 0 {
        return Err(Reply::new(555, Enhanced(5, 5, 4), "SMTPUTF8 is not supported"));
    }
    // RFC 1870 §6.2: a declared size over the limit is refused before any data is sent.
    if from.size > max_size {
        return Err(too_large());
    }
    let path = if from.address.is_empty() {
        ReversePath::Null
    } else {
        match from.address.parse::<EmailAddress>() {
            Ok(address) => ReversePath::Address(address),
            Err(error) => return Err(Reply::new(553, Enhanced(5, 1, 7), format!("Bad sender address: {error}"))),
        }
    };
    let ret = if from.flags & MAIL_RET_FULL != 0 {
        Some(DsnReturn::Full)
    } else if from.flags & MAIL_RET_HDRS != 0 {
        Some(DsnReturn::Headers)
    } else {
        None
    };
    Ok(MailFrom {
        path,
        body_type: if from.flags & MAIL_BODY_8BITMIME != 0 { BodyType::EightBitMime } else { BodyType::SevenBit },
        smtputf8: false,
        env_id: from.env_id.clone(),
        ret,
    })
}

fn too_large() -> Reply {
    Reply::new(552, Enhanced(5, 3, 4), "Message size exceeds fixed maximum message size")
}

fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, Enhanced(5, 5, 1), format!("Bad sequence of commands: {text}"))
}

fn command_error(error: CommandError) -> Reply {
    match error {
        CommandError::LineTooLong => Reply::new(500, Enhanced(5, 5, 2), "Line too long"),
        CommandError::Unknown => Reply::new(500, Enhanced(5, 5, 1), "Command unrecognized"),
        CommandError::InvalidSender => Reply::new(501, Enhanced(5, 1, 7), "Bad sender address syntax"),
        CommandError::InvalidRecipient => Reply::new(501, Enhanced(5, 1, 3), "Bad recipient address syntax"),
        CommandError::Syntax(text) => Reply::new(501, Enhanced(5, 5, 4), text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decode;
    use crate::command::CommandDecoder;

    fn session() -> Session {
        Session::new(SessionConfig { hostname: "mx.example.org".into(), max_message_size: 1000, max_recipients: 2 })
    }

    /// Runs client lines through decoder and session, answering recipient checks from `local`, and returns
    /// the server's replies in order, as a transcript.
    fn transcript(session: &mut Session, client: &str) -> Vec<String> {
        let mut decoder = CommandDecoder::default();
        let mut input = client.as_bytes();
        let mut out = Vec::new();
        loop {
            let command = match decoder.decode(input) {
                Decode::Incomplete => break,
                Decode::Skip { consumed } => {
                    input = &input[consumed..];
                    continue;
                }
                Decode::Item { item, consumed } => {
                    input = &input[consumed..];
                    Ok(item)
                }
                Decode::Invalid { error, consumed } => {
                    input = &input[consumed..];
                    Err(error)
                }
            };
            let reply = match session.handle(command) {
                Action::Reply(reply) | Action::Close(reply) | Action::ReceiveData(reply) => reply,
                Action::CheckRecipient(check) => {
                    let verdict = match check.recipient.address.domain().as_str() {
                        "example.org" if check.recipient.address.local_part() == "alice" => Verdict::Local,
                        "example.org" if check.recipient.address.local_part() == "bob" => Verdict::Local,
                        "example.org" if check.recipient.address.local_part() == "carol" => Verdict::Local,
                        "example.org" => Verdict::UnknownUser,
                        _ => Verdict::RelayDenied,
                    };
                    session.recipient_checked(check, verdict)
                }
            };
            out.push(reply.to_string());
        }
        out
    }

    #[test]
    fn a_plain_transaction() {
        let mut s = session();
        assert_eq!(s.greeting().to_string(), "220 mx.example.org ESMTP mailbus");
        let replies = transcript(
            &mut s,
            "EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n",
        );
        assert_eq!(
            replies,
            [
                "250-mx.example.org Hello c.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES",
                "250 2.1.0 Ok",
                "250 2.1.5 Ok",
                "354 End data with <CR><LF>.<CR><LF>",
            ]
        );
        let DataOutcome::Enqueue(message) = s.data_received(DataProgress::Complete(b"hi\r\n".to_vec())) else {
            panic!("expected a message to enqueue")
        };
        assert_eq!(message.recipients.len(), 1);
        assert_eq!(message.from.path, ReversePath::Address("a@example.net".parse().unwrap()));
        assert_eq!(s.queued("abc").to_string(), "250 2.0.0 Ok: queued as abc");
        // The transaction is over; a new one may start at once.
        assert_eq!(transcript(&mut s, "MAIL FROM:<>\r\n"), ["250 2.1.0 Ok"]);
    }

    #[test]
    fn recipients_are_refused_with_the_rfc_codes() {
        let mut s = session();
        let replies = transcript(
            &mut s,
            "HELO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<x@elsewhere.net>\r\nRCPT TO:<bad address>\r\nDATA\r\n",
        );
        assert_eq!(replies[2], "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown");
        assert_eq!(replies[3], "554 5.7.1 <x@elsewhere.net>: Relay access denied");
        assert!(replies[4].starts_with("501 5.1.3"), "{}", replies[4]);
        assert_eq!(replies[5], "554 5.5.1 No valid recipients");
    }

    #[test]
    fn too_many_recipients_is_452() {
        let mut s = session();
        let replies = transcript(
            &mut s,
            "EHLO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\n",
        );
        assert_eq!(replies[4], "452 4.5.3 Too many recipients");
    }

    #[test]
    fn out_of_order_commands_are_503_and_the_session_goes_on() {
        let mut s = session();
        let replies = transcript(
            &mut s,
            "MAIL FROM:<a@example.net>\r\nEHLO c\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nMAIL FROM:<a@example.net>\r\nMAIL FROM:<a@example.net>\r\nRSET\r\nRCPT TO:<alice@example.org>\r\n",
        );
        assert!(replies[0].starts_with("503 5.5.1"));
        assert!(replies[2].starts_with("503 5.5.1"));
        assert!(replies[3].starts_with("503 5.5.1"));
        assert_eq!(replies[4], "250 2.1.0 Ok");
        assert!(replies[5].starts_with("503 5.5.1 Bad sequence of commands: nested MAIL"));
        assert_eq!(replies[6], "250 2.0.0 Ok");
        assert!(replies[7].starts_with("503 5.5.1"));
    }

    #[test]
    fn size_limits() {
        let mut s = session();
        let replies = transcript(
            &mut s,
            "EHLO c\r\nMAIL FROM:<a@example.net> SIZE=1001\r\nMAIL FROM:<a@example.net> SIZE=1000\r\nRCPT TO:<alice@example.org>\r\n",
        );
        assert_eq!(replies[1], "552 5.3.4 Message size exceeds fixed maximum message size");
        assert_eq!(replies[2], "250 2.1.0 Ok");
        assert_eq!(
            s.data_received(DataProgress::TooLarge),
            DataOutcome::Reply(Reply::new(552, Enhanced(5, 3, 4), "Message size exceeds fixed maximum message size"))
        );
    }

    #[test]
    fn misc_commands() {
        let mut s = session();
        let replies = transcript(&mut s, "NOOP\r\nVRFY alice\r\nHELP\r\nEXPN list\r\nFOO\r\nSTARTTLS\r\nQUIT\r\n");
        assert_eq!(replies[0], "250 2.0.0 Ok");
        assert!(replies[1].starts_with("252 2.5.0"));
        assert!(replies[2].starts_with("214 2.0.0"));
        assert!(replies[3].starts_with("502 5.5.1"));
        assert_eq!(replies[4], "500 5.5.1 Command unrecognized");
        assert!(replies[5].starts_with("502 5.5.1"));
        assert_eq!(replies[6], "221 2.0.0 Bye");
    }

    #[test]
    fn mail_parameters_need_ehlo_and_smtputf8_is_not_offered_yet() {
        let mut s = session();
        let replies = transcript(
            &mut s,
            "HELO c\r\nMAIL FROM:<a@example.net> BODY=8BITMIME\r\nEHLO c\r\nMAIL FROM:<a@example.net> SMTPUTF8\r\nMAIL FROM:<a@example.net> BODY=8BITMIME\r\n",
        );
        assert!(replies[1].starts_with("555 5.5.4"));
        assert!(replies[3].starts_with("555 5.5.4"));
        assert_eq!(replies[4], "250 2.1.0 Ok");
    }
}
