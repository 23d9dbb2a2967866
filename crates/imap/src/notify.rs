//! RFC 5465 NOTIFY's syntax, which imap-codec does not parse: the command line as it reached
//! `Session::malformed`, read into what the session keeps while NOTIFY is on. Pure: no store, no I/O.
//!
//! ```text
//! notify           = "NOTIFY" SP (notify-set / "NONE")
//! notify-set       = "SET" [SP "STATUS"] SP event-group *(SP event-group)
//! event-group      = "(" filter-mailboxes SP events ")"
//! filter-mailboxes = "selected" / "selected-delayed" / "inboxes" / "personal" / "subscribed" /
//!                    ("subtree" SP one-or-more-mailbox) / ("mailboxes" SP one-or-more-mailbox)
//! events           = ("(" event *(SP event) ")") / "NONE"
//! event            = ("MessageNew" [SP "(" fetch-att *(SP fetch-att) ")"]) / "MessageExpunge" /
//!                    "FlagChange" / "AnnotationChange" / "MailboxName" / "SubscriptionChange" /
//!                    "MailboxMetadataChange" / "ServerMetadataChange" / atom
//! ```

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_types::IntoStatic;
use imap_types::command::CommandBody;
use imap_types::core::{AString, Tag};
use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};
use imap_types::mailbox::Mailbox;
use mailbus_address::MailboxName;

/// The longest mailbox name as written on the wire: modified UTF-7 may spell a name of
/// [`MailboxName::MAX_LEN`] octets in up to about three times as many.
const MAX_WIRE_NAME: usize = 4 * MailboxName::MAX_LEN;

/// MessageNew's items read a message the user has not seen: a body section is fetched as with PEEK, so
/// news of a message does not mark it \Seen (RFC 5465 §5.2 has the server send these by itself). RFC822
/// and RFC822.TEXT, which have no PEEK form, are sent as BODY.PEEK[] and BODY.PEEK[TEXT].
fn peeking(items: MacroOrMessageDataItemNames<'static>) -> MacroOrMessageDataItemNames<'static> {
    let MacroOrMessageDataItemNames::MessageDataItemNames(items) = items else { return items };
    let items = items
        .into_iter()
        .map(|item| match item {
            MessageDataItemName::BodyExt { section, partial, .. } => {
                MessageDataItemName::BodyExt { section, partial, peek: true }
            }
            MessageDataItemName::Binary { section, partial, .. } => {
                MessageDataItemName::Binary { section, partial, peek: true }
            }
            MessageDataItemName::Rfc822 => MessageDataItemName::BodyExt { section: None, partial: None, peek: true },
            MessageDataItemName::Rfc822Text => {
                MessageDataItemName::BodyExt { section: Some(Section::Text(None)), partial: None, peek: true }
            }
            other => other,
        })
        .collect();
    MacroOrMessageDataItemNames::MessageDataItemNames(items)
}

/// The events this server sends, as BADEVENT lists them (RFC 5465 §3.1).
pub const SUPPORTED: &str = "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange";

/// The most event groups one NOTIFY may hold; each costs a little on every event.
const MAX_GROUPS: usize = 32;
/// The most mailboxes one `mailboxes` or `subtree` filter may name.
const MAX_NAMES: usize = 256;

/// A NOTIFY command, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// NOTIFY NONE: no more notifications.
    None,
    /// NOTIFY SET: `status` asks for the STATUS of every watched mailbox at once (RFC 5465 §3.1).
    Set { status: bool, groups: Vec<Group> },
}

/// Which mailboxes an event group watches. Names are as the client wrote them (a `Mailbox`, modified
/// UTF-7 or UTF-8): the session turns them into its own names.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Selected,
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<Mailbox<'static>>),
    Mailboxes(Vec<Mailbox<'static>>),
}

/// The events an event group asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    /// MessageNew and MessageExpunge (RFC 5465 §5.1: one is never asked for without the other).
    pub messages: bool,
    /// The FETCH items MessageNew sends for a new message in the selected mailbox.
    pub fetch: Option<MacroOrMessageDataItemNames<'static>>,
    pub flag_change: bool,
    pub mailbox_name: bool,
    pub subscription_change: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub filter: Filter,
    pub events: Events,
}

/// Why a NOTIFY was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// BAD, with the reason.
    Syntax(&'static str),
    /// NO [BADEVENT (...)]: an event this server does not send.
    BadEvent,
}

/// The tag and the command when `line` is a NOTIFY command (whatever its arguments); `None` otherwise.
pub fn parse(line: &[u8]) -> Option<(Tag<'static>, Result<Command, Refusal>)> {
    let space = line.iter().position(|&b| b == b' ')?;
    let tag = Tag::try_from(line[..space].to_vec()).ok()?;
    let mut reader = Reader { line, at: space + 1 };
    if !reader.word()?.eq_ignore_ascii_case(b"NOTIFY") {
        return None;
    }
    Some((tag, reader.command()))
}

struct Reader<'a> {
    line: &'a [u8],
    at: usize,
}

fn bad(why: &'static str) -> Refusal {
    Refusal::Syntax(why)
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.at).copied()
    }

    /// An atom-like word, up to a space, a parenthesis or the line end.
    fn word(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        while let Some(b) = self.peek() {
            if matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n' | b'"' | b'{') {
                break;
            }
            self.at += 1;
        }
        (self.at > start).then(|| &self.line[start..self.at])
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn need(&mut self, byte: u8, why: &'static str) -> Result<(), Refusal> {
        if self.eat(byte) { Ok(()) } else { Err(bad(why)) }
    }

    fn end(&mut self) -> Result<(), Refusal> {
        self.eat(b'\r');
        if self.eat(b'\n') && self.at == self.line.len() { Ok(()) } else { Err(bad("unexpected text after NOTIFY")) }
    }

    fn command(&mut self) -> Result<Command, Refusal> {
        self.need(b' ', "NOTIFY needs SET or NONE")?;
        let verb = self.word().ok_or(bad("NOTIFY needs SET or NONE"))?;
        if verb.eq_ignore_ascii_case(b"NONE") {
            self.end()?;
            return Ok(Command::None);
        }
        if !verb.eq_ignore_ascii_case(b"SET") {
            return Err(bad("NOTIFY needs SET or NONE"));
        }
        self.need(b' ', "NOTIFY SET needs event groups")?;
        let mut status = false;
        if self.peek() != Some(b'(') {
            let word = self.word().ok_or(bad("NOTIFY SET needs event groups"))?;
            if !word.eq_ignore_ascii_case(b"STATUS") {
                return Err(bad("NOTIFY SET takes STATUS or event groups"));
            }
            status = true;
            self.need(b' ', "NOTIFY SET needs event groups")?;
        }
        let mut groups = vec![self.group()?];
        while self.eat(b' ') {
            if groups.len() == MAX_GROUPS {
                return Err(bad("too many event groups"));
            }
            groups.push(self.group()?);
        }
        self.end()?;
        Ok(Command::Set { status, groups })
    }

    fn group(&mut self) -> Result<Group, Refusal> {
        self.need(b'(', "an event group is parenthesised")?;
        let filter = self.filter()?;
        let selected = matches!(filter, Filter::Selected | Filter::SelectedDelayed);
        self.need(b' ', "an event group needs events")?;
        let events = self.events(selected)?;
        self.need(b')', "an event group ends with )")?;
        Ok(Group { filter, events })
    }

    fn filter(&mut self) -> Result<Filter, Refusal> {
        let word = self.word().ok_or(bad("a mailbox filter is expected"))?.to_ascii_lowercase();
        Ok(match word.as_slice() {
            b"selected" => Filter::Selected,
            b"selected-delayed" => Filter::SelectedDelayed,
            b"inboxes" => Filter::Inboxes,
            b"personal" => Filter::Personal,
            b"subscribed" => Filter::Subscribed,
            b"subtree" => Filter::Subtree(self.mailboxes()?),
            b"mailboxes" => Filter::Mailboxes(self.mailboxes()?),
            _ => return Err(bad("unknown mailbox filter")),
        })
    }

    /// `one-or-more-mailbox`, after its keyword.
    fn mailboxes(&mut self) -> Result<Vec<Mailbox<'static>>, Refusal> {
        self.need(b' ', "a mailbox name is expected")?;
        if !self.eat(b'(') {
            return Ok(vec![self.mailbox()?]);
        }
        let mut names = vec![self.mailbox()?];
        while self.eat(b' ') {
            if names.len() == MAX_NAMES {
                return Err(bad("too many mailbox names"));
            }
            names.push(self.mailbox()?);
        }
        self.need(b')', "a list of mailboxes ends with )")?;
        Ok(names)
    }

    /// An astring: an atom, a quoted string or a literal (whose bytes the framer has already bounded).
    fn mailbox(&mut self) -> Result<Mailbox<'static>, Refusal> {
        let bytes = match self.peek() {
            Some(b'"') => self.quoted()?,
            Some(b'{') => self.literal()?,
            _ => self.word().ok_or(bad("a mailbox name is expected"))?.to_vec(),
        };
        // The settings live as long as the login: a name no mailbox can have is not kept. (The framer
        // bounds a literal by APPENDLIMIT, far more than a name.)
        if bytes.len() > MAX_WIRE_NAME {
            return Err(bad("mailbox name too long"));
        }
        let astring = AString::try_from(bytes).map_err(|_| bad("not a mailbox name"))?;
        Ok(Mailbox::from(astring).into_static())
    }

    fn quoted(&mut self) -> Result<Vec<u8>, Refusal> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escaped = self.peek().filter(|b| matches!(b, b'"' | b'\\')).ok_or(bad("bad quoted string"))?;
                    out.push(escaped);
                    self.at += 1;
                }
                Some(b'\r' | b'\n') | None => return Err(bad("unterminated quoted string")),
                Some(b) => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Vec<u8>, Refusal> {
        self.at += 1;
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit() || b == b'+') {
            self.at += 1;
        }
        let digits = &self.line[start..self.at];
        let digits = digits.strip_suffix(b"+").unwrap_or(digits);
        let size: usize = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or(bad("bad literal"))?;
        if size > MAX_WIRE_NAME {
            return Err(bad("mailbox name too long"));
        }
        self.need(b'}', "bad literal")?;
        self.eat(b'\r');
        self.need(b'\n', "bad literal")?;
        let data = self.line.get(self.at..self.at.checked_add(size).ok_or(bad("bad literal"))?);
        let data = data.ok_or(bad("literal longer than the command"))?.to_vec();
        self.at += size;
        Ok(data)
    }

    fn events(&mut self, selected: bool) -> Result<Events, Refusal> {
        let mut events = Events::default();
        if !self.eat(b'(') {
            let word = self.word().ok_or(bad("events are expected"))?;
            return if word.eq_ignore_ascii_case(b"NONE") { Ok(events) } else { Err(bad("events are expected")) };
        }
        let (mut new, mut expunge, mut unsupported) = (false, false, false);
        loop {
            let word = self.word().ok_or(bad("an event name is expected"))?.to_ascii_lowercase();
            match word.as_slice() {
                b"messagenew" => {
                    new = true;
                    if self.line[self.at..].starts_with(b" (") {
                        self.at += 1;
                        if !selected {
                            return Err(bad("MessageNew's FETCH items are for the selected mailbox only"));
                        }
                        events.fetch = Some(self.fetch_items()?);
                    }
                }
                b"messageexpunge" => expunge = true,
                b"flagchange" => events.flag_change = true,
                b"mailboxname" => events.mailbox_name = true,
                b"subscriptionchange" => events.subscription_change = true,
                // AnnotationChange, the METADATA events and anything else: not sent here.
                _ if word.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') => unsupported = true,
                _ => return Err(bad("an event name is expected")),
            }
            if !self.eat(b' ') {
                break;
            }
        }
        self.need(b')', "the events end with )")?;
        if unsupported {
            return Err(Refusal::BadEvent);
        }
        // RFC 5465 §5.1-§5.3: MessageNew and MessageExpunge go together, and FlagChange needs both.
        if new != expunge {
            return Err(bad("MessageNew and MessageExpunge must be asked for together"));
        }
        if events.flag_change && !new {
            return Err(bad("FlagChange needs MessageNew and MessageExpunge"));
        }
        events.messages = new;
        Ok(events)
    }

    /// MessageNew's parenthesised FETCH items, checked by imap-codec as a FETCH command's.
    fn fetch_items(&mut self) -> Result<MacroOrMessageDataItemNames<'static>, Refusal> {
        let start = self.at;
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b'(' | b'[') => depth += 1,
                Some(b')' | b']') => {
                    depth = depth.checked_sub(1).ok_or(bad("unbalanced FETCH items"))?;
                    if depth == 0 {
                        self.at += 1;
                        break;
                    }
                }
                Some(b'\r' | b'\n') | None => return Err(bad("unbalanced FETCH items")),
                Some(_) => {}
            }
            self.at += 1;
        }
        let mut command = b"n FETCH 1 ".to_vec();
        command.extend_from_slice(&self.line[start..self.at]);
        command.extend_from_slice(b"\r\n");
        match CommandCodec::default().decode(&command) {
            Ok((_, parsed)) => match parsed.body {
                CommandBody::Fetch { macro_or_item_names, .. } => Ok(peeking(macro_or_item_names.into_static())),
                _ => Err(bad("not FETCH items")),
            },
            Err(_) => Err(bad("not FETCH items")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> Result<Command, Refusal> {
        parse(line.as_bytes()).expect("a NOTIFY command").1
    }

    fn name(text: &str) -> Mailbox<'static> {
        Mailbox::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn the_rfc_examples_parse() {
        let Command::Set { status, groups } = read(
            "a NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) \
             (subtree (Lists \"Other Users\") (MessageNew MessageExpunge)) (mailboxes {4}\r\nWork (MailboxName))\r\n",
        )
        .unwrap() else {
            panic!()
        };
        assert!(status);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].filter, Filter::Selected);
        assert!(groups[0].events.messages && groups[0].events.flag_change && groups[0].events.fetch.is_some());
        assert_eq!(groups[1].filter, Filter::Subtree(vec![name("Lists"), name("Other Users")]));
        assert!(groups[1].events.messages && !groups[1].events.flag_change);
        assert_eq!(groups[2].filter, Filter::Mailboxes(vec![name("Work")]));
        assert!(groups[2].events.mailbox_name && !groups[2].events.messages);
        assert_eq!(read("b notify none\r\n"), Ok(Command::None));
        let Command::Set { status, groups } =
            read("c NOTIFY SET (personal NONE) (inboxes (MessageNew MessageExpunge))\r\n").unwrap()
        else {
            panic!()
        };
        assert!(!status);
        assert_eq!(groups[0].events, Events::default());
        assert_eq!(groups[1].filter, Filter::Inboxes);
    }

    #[test]
    fn other_commands_are_not_notify() {
        assert!(parse(b"a NOOP\r\n").is_none());
        assert!(parse(b"a NOTIFYX SET\r\n").is_none());
        assert!(parse(b"NOTIFY\r\n").is_none());
    }

    #[test]
    fn unsupported_events_are_badevent_and_bad_syntax_is_bad() {
        assert_eq!(
            read("a NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))\r\n"),
            Err(Refusal::BadEvent)
        );
        assert_eq!(read("a NOTIFY SET (personal (ServerMetadataChange))\r\n"), Err(Refusal::BadEvent));
        for line in [
            "a NOTIFY\r\n",
            "a NOTIFY SET\r\n",
            "a NOTIFY SET STATUS\r\n",
            "a NOTIFY SET (personal)\r\n",
            "a NOTIFY SET (personal (MessageNew))\r\n",
            "a NOTIFY SET (personal (FlagChange))\r\n",
            "a NOTIFY SET (personal (MessageNew (UID) MessageExpunge))\r\n",
            "a NOTIFY SET (selected (MessageNew (NOSUCHITEM) MessageExpunge))\r\n",
            "a NOTIFY SET (selected (MessageNew (UID MessageExpunge))\r\n",
            "a NOTIFY SET (nowhere (MailboxName))\r\n",
            "a NOTIFY SET (mailboxes \"unterminated (MailboxName))\r\n",
            "a NOTIFY SET (mailboxes {99}\r\nWork (MailboxName))\r\n",
            "a NOTIFY SET (personal (MailboxName)) trailing\r\n",
            "a NOTIFY NONE extra\r\n",
            "a NOTIFY SET (personal (\"quoted\"))\r\n",
        ] {
            assert!(matches!(read(line), Err(Refusal::Syntax(_))), "{line:?}: {:?}", read(line));
        }
    }

    #[test]
    fn message_new_reads_bodies_as_peek_so_news_of_a_message_does_not_mark_it_seen() {
        let Command::Set { groups, .. } = read(
            "a NOTIFY SET (selected (MessageNew (UID BODY[HEADER] BINARY[1] RFC822 RFC822.TEXT) MessageExpunge))\r\n",
        )
        .unwrap() else {
            panic!("a SET")
        };
        let Some(MacroOrMessageDataItemNames::MessageDataItemNames(items)) = &groups[0].events.fetch else {
            panic!("items: {:?}", groups[0].events.fetch)
        };
        let peeks: Vec<bool> = items
            .iter()
            .filter_map(|item| match item {
                MessageDataItemName::BodyExt { peek, .. } | MessageDataItemName::Binary { peek, .. } => Some(*peek),
                _ => None,
            })
            .collect();
        assert_eq!(peeks, [true, true, true, true], "{items:?}");
        assert!(!items.iter().any(|i| matches!(i, MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text)));
    }

    #[test]
    fn a_name_no_mailbox_can_have_is_refused_not_kept() {
        let long = "x".repeat(MAX_WIRE_NAME + 1);
        let literal = format!("a NOTIFY SET (mailboxes {{{}}}\r\n{long} (MailboxName))\r\n", long.len());
        assert_eq!(read(&literal), Err(Refusal::Syntax("mailbox name too long")));
        let quoted = format!("a NOTIFY SET (mailboxes \"{long}\" (MailboxName))\r\n");
        assert_eq!(read(&quoted), Err(Refusal::Syntax("mailbox name too long")));
        let fits = "x".repeat(MailboxName::MAX_LEN);
        let line = format!("a NOTIFY SET (mailboxes {{{}}}\r\n{fits} (MailboxName))\r\n", fits.len());
        assert!(matches!(read(&line), Ok(Command::Set { .. })), "{:?}", read(&line));
    }

    #[test]
    fn every_cut_of_a_command_is_refused_without_a_panic() {
        let line = b"a NOTIFY SET STATUS (selected (MessageNew (UID BODY[HEADER.FIELDS (SUBJECT)]) MessageExpunge)) (mailboxes (\"a\\\\b\" {1+}\r\nc) (MailboxName SubscriptionChange))\r\n";
        assert!(matches!(parse(line).unwrap().1, Ok(Command::Set { .. })));
        for cut in 0..line.len() {
            if let Some((_, parsed)) = parse(&line[..cut]) {
                assert!(parsed.is_err(), "cut at {cut}");
            }
        }
    }
}
