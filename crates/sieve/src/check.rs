//! From the generic grammar to a checked [`Script`]: each command and test is known, takes the tags
//! and positional arguments its RFC gives it, and uses only extensions named in `require` (RFC 5228
//! §3.2, which also makes `require` come before every other command).

use std::collections::BTreeSet;
use std::iter::Peekable;
use std::slice::Iter;

use crate::compare::{Comparator, MatchType, Relation};
use crate::grammar::{self, Argument};
use crate::lexer::Position;
use crate::script::*;
use crate::{ParseError, date};

pub(crate) fn script(commands: &[grammar::Command]) -> Result<Script, ParseError> {
    let mut checker = Checker { extensions: BTreeSet::new() };
    let mut rest = commands;
    while let Some((first, tail)) = rest.split_first() {
        if first.name != "require" {
            break;
        }
        checker.require(first)?;
        rest = tail;
    }
    let commands = checker.block(rest)?;
    Ok(Script { commands, extensions: checker.extensions })
}

struct Checker {
    extensions: BTreeSet<Extension>,
}

type Args<'a> = Peekable<Iter<'a, Argument>>;

fn error<T>(at: Position, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError::new(at, message))
}

/// Tags shared by many tests: comparator, match type, address part, index, zone.
#[derive(Default)]
struct Common {
    comparator: Option<(Comparator, Position)>,
    kind: Option<(MatchType, Position)>,
    part: Option<AddressPart>,
    index: Option<u64>,
    last: bool,
    zone: Option<Zone>,
}

#[derive(Clone, Copy, PartialEq)]
enum Takes {
    Match,
    MatchAndAddress,
    MatchAndIndex,
    MatchAddressAndIndex,
    MatchIndexAndZone,
    MatchAndZone,
}

impl Checker {
    fn need(&self, extension: Extension, at: Position, what: &str) -> Result<(), ParseError> {
        if self.extensions.contains(&extension) {
            return Ok(());
        }
        error(at, format!("{what} needs the \"{}\" extension: add require \"{}\"", extension.name(), extension.name()))
    }

    fn require(&mut self, command: &grammar::Command) -> Result<(), ParseError> {
        let names = match (command.arguments.as_slice(), &command.tests[..], &command.block) {
            ([Argument::Strings { values, .. }], [], None) => values,
            _ => return error(command.at, "require takes one string list and ends with ';'"),
        };
        for name in names {
            match Extension::from_name(name) {
                Some(extension) => {
                    self.extensions.insert(extension);
                }
                None => return error(command.at, format!("unsupported extension \"{name}\"")),
            }
        }
        Ok(())
    }

    fn block(&mut self, commands: &[grammar::Command]) -> Result<Vec<Command>, ParseError> {
        let mut out = Vec::new();
        let mut iter = commands.iter().peekable();
        while let Some(command) = iter.next() {
            match command.name.as_str() {
                "if" => {
                    let mut branches = vec![self.branch(command)?];
                    let mut otherwise = Vec::new();
                    while let Some(next) = iter.next_if(|c| c.name == "elsif" || c.name == "else") {
                        if next.name == "elsif" {
                            branches.push(self.branch(next)?);
                        } else {
                            if !next.arguments.is_empty() || !next.tests.is_empty() {
                                return error(next.at, "else takes no arguments");
                            }
                            let Some(block) = &next.block else { return error(next.at, "else needs a block") };
                            otherwise = self.block(block)?;
                            break;
                        }
                    }
                    out.push(Command::If { branches, otherwise });
                }
                "elsif" | "else" => return error(command.at, format!("{} without a preceding if", command.name)),
                "require" => return error(command.at, "require must come before every other command"),
                _ => out.push(self.command(command)?),
            }
        }
        Ok(out)
    }

    fn branch(&mut self, command: &grammar::Command) -> Result<(Test, Vec<Command>), ParseError> {
        if !command.arguments.is_empty() || command.tests.len() != 1 {
            return error(command.at, format!("{} takes exactly one test", command.name));
        }
        let Some(block) = &command.block else { return error(command.at, format!("{} needs a block", command.name)) };
        Ok((self.test(&command.tests[0])?, self.block(block)?))
    }

    fn command(&mut self, command: &grammar::Command) -> Result<Command, ParseError> {
        let at = command.at;
        if command.block.is_some() {
            return error(at, format!("{} takes no block", command.name));
        }
        if !command.tests.is_empty() {
            return error(at, format!("{} takes no test", command.name));
        }
        let mut args = command.arguments.iter().peekable();
        let checked = match command.name.as_str() {
            "stop" => Command::Stop,
            "discard" => Command::Discard,
            "keep" => {
                let flags = self.flags_tag(&mut args)?;
                Command::Keep { flags }
            }
            "redirect" => {
                let mut copy = false;
                while let Some(Argument::Tag(tag, tag_at)) = args.peek() {
                    match tag.as_str() {
                        "copy" => self.need(Extension::Copy, *tag_at, ":copy")?,
                        _ => return error(*tag_at, format!("redirect does not take :{tag}")),
                    }
                    copy = true;
                    args.next();
                }
                let address = self.string(&mut args, at, "redirect's address")?;
                if !address.contains("${") && !crate::interpret::valid_address(&address) {
                    return error(at, format!("redirect to an invalid address \"{address}\""));
                }
                Command::Redirect { address, copy }
            }
            "fileinto" => {
                self.need(Extension::FileInto, at, "fileinto")?;
                let (mut copy, mut create, mut flags) = (false, false, None);
                while let Some(Argument::Tag(tag, tag_at)) = args.peek() {
                    let tag_at = *tag_at;
                    match tag.as_str() {
                        "copy" => {
                            self.need(Extension::Copy, tag_at, ":copy")?;
                            copy = true;
                            args.next();
                        }
                        "create" => {
                            self.need(Extension::Mailbox, tag_at, ":create")?;
                            create = true;
                            args.next();
                        }
                        "flags" => flags = self.flags_tag(&mut args)?,
                        _ => return error(tag_at, format!("fileinto does not take :{tag}")),
                    }
                }
                let mailbox = self.string(&mut args, at, "fileinto's mailbox")?;
                Command::FileInto { mailbox, flags, copy, create }
            }
            "reject" | "ereject" => {
                let extended = command.name == "ereject";
                self.need(if extended { Extension::Ereject } else { Extension::Reject }, at, &command.name)?;
                Command::Reject { reason: self.string(&mut args, at, "the reason")?, extended }
            }
            "setflag" | "addflag" | "removeflag" => {
                self.need(Extension::Imap4Flags, at, &command.name)?;
                let change = match command.name.as_str() {
                    "setflag" => FlagChange::Set,
                    "addflag" => FlagChange::Add,
                    _ => FlagChange::Remove,
                };
                let first = self.strings(&mut args, at, "a flag list")?;
                let (variable, flags) = match args.peek() {
                    Some(Argument::Strings { .. }) => {
                        self.need(Extension::Variables, at, "a variable name in a flag command")?;
                        let [name] = <[String; 1]>::try_from(first).or_else(|_| error(at, "one variable name"))?;
                        (Some(name.to_ascii_lowercase()), self.strings(&mut args, at, "a flag list")?)
                    }
                    _ => (None, first),
                };
                Command::Flags { change, variable, flags }
            }
            "set" => self.set(&mut args, at)?,
            "vacation" => self.vacation(&mut args, at)?,
            other => return error(at, format!("unknown command \"{other}\"")),
        };
        match args.next() {
            None => Ok(checked),
            Some(extra) => error(extra.at(), format!("{} takes no further argument here", command.name)),
        }
    }

    fn flags_tag(&mut self, args: &mut Args<'_>) -> Result<Option<Vec<String>>, ParseError> {
        match args.peek() {
            Some(Argument::Tag(tag, at)) if tag == "flags" => {
                let at = *at;
                self.need(Extension::Imap4Flags, at, ":flags")?;
                args.next();
                Ok(Some(self.strings(args, at, "a flag list after :flags")?))
            }
            Some(Argument::Tag(tag, at)) => error(*at, format!("unexpected :{tag}")),
            _ => Ok(None),
        }
    }

    fn set(&mut self, args: &mut Args<'_>, at: Position) -> Result<Command, ParseError> {
        self.need(Extension::Variables, at, "set")?;
        let mut modifiers: Vec<Modifier> = Vec::new();
        while let Some(Argument::Tag(tag, tag_at)) = args.peek() {
            let modifier = match tag.as_str() {
                "lower" => Modifier::Lower,
                "upper" => Modifier::Upper,
                "lowerfirst" => Modifier::LowerFirst,
                "upperfirst" => Modifier::UpperFirst,
                "quotewildcard" => Modifier::QuoteWildcard,
                "length" => Modifier::Length,
                _ => return error(*tag_at, format!("set does not take :{tag}")),
            };
            // RFC 5229 §4.1: two modifiers of the same precedence are an error.
            if modifiers.iter().any(|m| m.precedence() == modifier.precedence()) {
                return error(*tag_at, format!("set takes one modifier of the precedence of :{tag}"));
            }
            modifiers.push(modifier);
            args.next();
        }
        modifiers.sort_by_key(|m| std::cmp::Reverse(m.precedence()));
        let name = self.string(args, at, "the variable name")?;
        if !valid_variable_name(&name) {
            return error(at, format!("invalid variable name \"{name}\""));
        }
        let value = self.string(args, at, "the value")?;
        Ok(Command::Set { name: name.to_ascii_lowercase(), value, modifiers })
    }

    fn vacation(&mut self, args: &mut Args<'_>, at: Position) -> Result<Command, ParseError> {
        self.need(Extension::Vacation, at, "vacation")?;
        let mut vacation = VacationCommand {
            days: None,
            subject: None,
            from: None,
            addresses: Vec::new(),
            mime: false,
            handle: None,
            reason: String::new(),
        };
        while let Some(Argument::Tag(tag, tag_at)) = args.peek() {
            let tag_at = *tag_at;
            let tag = tag.clone();
            args.next();
            match tag.as_str() {
                "days" => match args.next() {
                    Some(Argument::Number(n, _)) => vacation.days = Some(*n),
                    _ => return error(tag_at, ":days takes a number"),
                },
                "subject" => vacation.subject = Some(self.string(args, tag_at, "a subject after :subject")?),
                "from" => vacation.from = Some(self.string(args, tag_at, "an address after :from")?),
                "addresses" => vacation.addresses = self.strings(args, tag_at, "addresses after :addresses")?,
                "handle" => vacation.handle = Some(self.string(args, tag_at, "a handle after :handle")?),
                "mime" => vacation.mime = true,
                _ => return error(tag_at, format!("vacation does not take :{tag}")),
            }
        }
        vacation.reason = self.string(args, at, "vacation's reason")?;
        Ok(Command::Vacation(Box::new(vacation)))
    }

    fn string(&self, args: &mut Args<'_>, at: Position, what: &str) -> Result<String, ParseError> {
        match args.next() {
            Some(Argument::Strings { values, single: true, at }) => self.decode(&values[0], *at),
            Some(other) => error(other.at(), format!("expected {what} (a string)")),
            None => error(at, format!("missing {what}")),
        }
    }

    fn strings(&self, args: &mut Args<'_>, at: Position, what: &str) -> Result<Vec<String>, ParseError> {
        match args.next() {
            Some(Argument::Strings { values, at, .. }) => values.iter().map(|v| self.decode(v, *at)).collect(),
            Some(other) => error(other.at(), format!("expected {what}")),
            None => error(at, format!("missing {what}")),
        }
    }

    /// RFC 5228 §2.4.2.4: with "encoded-character", `${hex:…}` and `${unicode:…}` stand for characters.
    fn decode(&self, value: &str, at: Position) -> Result<String, ParseError> {
        if !self.extensions.contains(&Extension::EncodedCharacter) {
            return Ok(value.to_owned());
        }
        crate::variables::decode_encoded_characters(value).or_else(|message| error(at, message))
    }

    fn test(&mut self, test: &grammar::Test) -> Result<Test, ParseError> {
        let at = test.at;
        let name = test.name.as_str();
        match name {
            "not" => {
                let [inner] = test.tests.as_slice() else { return error(at, "not takes one test") };
                if !test.arguments.is_empty() || test.test_list {
                    return error(at, "not takes one test");
                }
                return Ok(Test::Not(Box::new(self.test(inner)?)));
            }
            "allof" | "anyof" => {
                if !test.arguments.is_empty() || !test.test_list {
                    return error(at, format!("{name} takes a test list in parentheses"));
                }
                let tests = test.tests.iter().map(|t| self.test(t)).collect::<Result<Vec<_>, _>>()?;
                return Ok(if name == "allof" { Test::AllOf(tests) } else { Test::AnyOf(tests) });
            }
            _ => {}
        }
        if !test.tests.is_empty() {
            return error(at, format!("{name} takes no nested test"));
        }
        let mut args = test.arguments.iter().peekable();
        let checked = match name {
            "true" => Test::True,
            "false" => Test::False,
            "exists" => Test::Exists(self.strings(&mut args, at, "header names")?),
            "size" => {
                let over = match args.next() {
                    Some(Argument::Tag(tag, _)) if tag == "over" => true,
                    Some(Argument::Tag(tag, _)) if tag == "under" => false,
                    _ => return error(at, "size takes :over or :under and a number"),
                };
                match args.next() {
                    Some(Argument::Number(limit, _)) => Test::Size { over, limit: *limit },
                    _ => return error(at, "size takes :over or :under and a number"),
                }
            }
            "header" => {
                let common = self.common(&mut args, Takes::MatchAndIndex)?;
                let names = self.strings(&mut args, at, "header names")?;
                let keys = self.strings(&mut args, at, "keys")?;
                Test::Header { matching: self.matching(&common, at)?, names, keys, index: index(&common) }
            }
            "address" => {
                let common = self.common(&mut args, Takes::MatchAddressAndIndex)?;
                let names = self.strings(&mut args, at, "header names")?;
                let keys = self.strings(&mut args, at, "keys")?;
                let part = common.part.unwrap_or(AddressPart::All);
                Test::Address { matching: self.matching(&common, at)?, part, names, keys, index: index(&common) }
            }
            "envelope" => {
                self.need(Extension::Envelope, at, "envelope")?;
                let common = self.common(&mut args, Takes::MatchAndAddress)?;
                let names = self.strings(&mut args, at, "envelope parts")?;
                if let Some(bad) = names
                    .iter()
                    .find(|n| !n.contains("${") && !["from", "to"].contains(&n.to_ascii_lowercase().as_str()))
                {
                    return error(at, format!("unknown envelope part \"{bad}\" (use \"from\" or \"to\")"));
                }
                let keys = self.strings(&mut args, at, "keys")?;
                let part = common.part.unwrap_or(AddressPart::All);
                Test::Envelope { matching: self.matching(&common, at)?, part, names, keys }
            }
            "body" => {
                self.need(Extension::Body, at, "body")?;
                let (common, transform) = self.body_tags(&mut args)?;
                let keys = self.strings(&mut args, at, "keys")?;
                Test::Body { matching: self.matching(&common, at)?, transform, keys }
            }
            "string" => {
                self.need(Extension::Variables, at, "the string test")?;
                let common = self.common(&mut args, Takes::Match)?;
                let sources = self.strings(&mut args, at, "source strings")?;
                let keys = self.strings(&mut args, at, "keys")?;
                Test::String { matching: self.matching(&common, at)?, sources, keys }
            }
            "hasflag" => {
                self.need(Extension::Imap4Flags, at, "hasflag")?;
                let common = self.common(&mut args, Takes::Match)?;
                let first = self.strings(&mut args, at, "flags")?;
                let (variables, keys) = match args.peek() {
                    Some(Argument::Strings { .. }) => {
                        self.need(Extension::Variables, at, "variable names in hasflag")?;
                        (
                            Some(first.iter().map(|v| v.to_ascii_lowercase()).collect()),
                            self.strings(&mut args, at, "flags")?,
                        )
                    }
                    _ => (None, first),
                };
                Test::HasFlag { matching: self.matching(&common, at)?, variables, keys }
            }
            "date" => {
                self.need(Extension::Date, at, "date")?;
                let common = self.common(&mut args, Takes::MatchIndexAndZone)?;
                let header = self.string(&mut args, at, "a header name")?;
                let part = self.date_part(&mut args, at)?;
                let keys = self.strings(&mut args, at, "keys")?;
                let zone = common.zone.clone().unwrap_or(Zone::Local);
                Test::Date { matching: self.matching(&common, at)?, zone, header, part, keys, index: index(&common) }
            }
            "currentdate" => {
                self.need(Extension::Date, at, "currentdate")?;
                let common = self.common(&mut args, Takes::MatchAndZone)?;
                let part = self.date_part(&mut args, at)?;
                let keys = self.strings(&mut args, at, "keys")?;
                let zone = common.zone.clone().unwrap_or(Zone::Local);
                Test::CurrentDate { matching: self.matching(&common, at)?, zone, part, keys }
            }
            "mailboxexists" => {
                self.need(Extension::Mailbox, at, "mailboxexists")?;
                Test::MailboxExists(self.strings(&mut args, at, "mailbox names")?)
            }
            other => return error(at, format!("unknown test \"{other}\"")),
        };
        match args.next() {
            None => Ok(checked),
            Some(extra) => error(extra.at(), format!("{name} takes no further argument here")),
        }
    }

    fn date_part(&self, args: &mut Args<'_>, at: Position) -> Result<String, ParseError> {
        let part = self.string(args, at, "a date part")?;
        if !part.contains("${") && !date::is_part(&part) {
            return error(at, format!("unknown date part \"{part}\""));
        }
        Ok(part.to_ascii_lowercase())
    }

    fn body_tags(&mut self, args: &mut Args<'_>) -> Result<(Common, BodyTransform), ParseError> {
        let mut transform = None;
        let mut rest = Vec::new();
        while let Some(Argument::Tag(tag, tag_at)) = args.peek() {
            let tag_at = *tag_at;
            let next = match tag.as_str() {
                "raw" => Some(BodyTransform::Raw),
                "text" => Some(BodyTransform::Text),
                "content" => {
                    args.next();
                    Some(BodyTransform::Content(self.strings(args, tag_at, "content types after :content")?))
                }
                _ => None,
            };
            match next {
                Some(t) => {
                    if transform.replace(t).is_some() {
                        return error(tag_at, "body takes one of :raw, :content and :text");
                    }
                    if !matches!(transform, Some(BodyTransform::Content(_))) {
                        args.next();
                    }
                }
                None => {
                    // Hand the other tags (and a relational's argument) to the common reader.
                    rest.push(args.next().expect("peeked").clone());
                    if let Some(Argument::Strings { .. }) = args.peek()
                        && matches!(tag.as_str(), "comparator" | "value" | "count")
                    {
                        rest.push(args.next().expect("peeked").clone());
                    }
                }
            }
        }
        let mut rest_args = rest.iter().peekable();
        let common = self.common(&mut rest_args, Takes::Match)?;
        if let Some(extra) = rest_args.next() {
            return error(extra.at(), "unexpected argument to body");
        }
        Ok((common, transform.unwrap_or(BodyTransform::Text)))
    }

    fn common(&mut self, args: &mut Args<'_>, takes: Takes) -> Result<Common, ParseError> {
        let mut common = Common::default();
        while let Some(Argument::Tag(tag, at)) = args.peek() {
            let at = *at;
            let tag = tag.clone();
            args.next();
            let address = matches!(takes, Takes::MatchAndAddress | Takes::MatchAddressAndIndex);
            let indexed =
                matches!(takes, Takes::MatchAndIndex | Takes::MatchAddressAndIndex | Takes::MatchIndexAndZone);
            let zoned = matches!(takes, Takes::MatchIndexAndZone | Takes::MatchAndZone);
            match tag.as_str() {
                "comparator" => {
                    let name = self.string(args, at, "a comparator name")?;
                    let Some(comparator) = Comparator::from_name(&name) else {
                        return error(at, format!("unknown comparator \"{name}\""));
                    };
                    if comparator == Comparator::AsciiNumeric {
                        self.need(Extension::ComparatorAsciiNumeric, at, "comparator \"i;ascii-numeric\"")?;
                    }
                    set_once(&mut common.comparator, (comparator, at), at, "comparator")?;
                }
                "is" | "contains" | "matches" => {
                    let kind = match tag.as_str() {
                        "is" => MatchType::Is,
                        "contains" => MatchType::Contains,
                        _ => MatchType::Matches,
                    };
                    set_once(&mut common.kind, (kind, at), at, "match type")?;
                }
                "value" | "count" => {
                    self.need(Extension::Relational, at, &format!(":{tag}"))?;
                    let name = self.string(args, at, "a relation such as \"gt\"")?;
                    let Some(relation) = Relation::from_name(&name) else {
                        return error(at, format!("unknown relation \"{name}\""));
                    };
                    let kind = if tag == "value" { MatchType::Value(relation) } else { MatchType::Count(relation) };
                    set_once(&mut common.kind, (kind, at), at, "match type")?;
                }
                "all" | "localpart" | "domain" | "user" | "detail" if address => {
                    let part = match tag.as_str() {
                        "all" => AddressPart::All,
                        "localpart" => AddressPart::LocalPart,
                        "domain" => AddressPart::Domain,
                        "user" => AddressPart::User,
                        _ => AddressPart::Detail,
                    };
                    if matches!(part, AddressPart::User | AddressPart::Detail) {
                        self.need(Extension::Subaddress, at, &format!(":{tag}"))?;
                    }
                    set_once(&mut common.part, part, at, "address part")?;
                }
                "index" if indexed => {
                    self.need(Extension::Index, at, ":index")?;
                    match args.next() {
                        Some(Argument::Number(n, _)) if *n > 0 => common.index = Some(*n),
                        _ => return error(at, ":index takes a number from 1"),
                    }
                }
                "last" if indexed => {
                    self.need(Extension::Index, at, ":last")?;
                    common.last = true;
                }
                "zone" if zoned => {
                    let zone = self.string(args, at, "a zone such as \"+0100\"")?;
                    if date::parse_zone(&zone).is_none() {
                        return error(at, format!("invalid zone \"{zone}\" (expected +hhmm or -hhmm)"));
                    }
                    set_once(&mut common.zone, Zone::Fixed(zone), at, "zone")?;
                }
                "originalzone" if takes == Takes::MatchIndexAndZone => {
                    set_once(&mut common.zone, Zone::Original, at, "zone")?;
                }
                _ => return error(at, format!("unexpected tag :{tag}")),
            }
        }
        if common.last && common.index.is_none() {
            return error(args.peek().map_or(Position { line: 1, column: 1 }, |a| a.at()), ":last needs :index");
        }
        Ok(common)
    }

    fn matching(&self, common: &Common, at: Position) -> Result<Match, ParseError> {
        let comparator = common.comparator.map_or(Comparator::AsciiCasemap, |(c, _)| c);
        let kind = common.kind.map_or(MatchType::Is, |(k, _)| k);
        if matches!(kind, MatchType::Contains | MatchType::Matches) && !comparator.has_substring() {
            let at = common.kind.map_or(at, |(_, a)| a);
            return error(at, "comparator \"i;ascii-numeric\" cannot do :contains or :matches");
        }
        Ok(Match { comparator, kind })
    }
}

fn index(common: &Common) -> Option<Index> {
    common.index.map(|n| Index { n, last: common.last })
}

fn set_once<T>(slot: &mut Option<T>, value: T, at: Position, what: &str) -> Result<(), ParseError> {
    if slot.replace(value).is_some() {
        return error(at, format!("more than one {what}"));
    }
    Ok(())
}

/// RFC 5229 §3: identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_"); `set` cannot name a match variable.
fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
