//! A checked script: every command and test known, its arguments typed, every extension it uses
//! required. Strings may still hold `${…}` references, expanded when the script runs.

use std::collections::BTreeSet;

use crate::compare::{Comparator, MatchType};

/// A script that passed [`crate::parse`]; run it with [`crate::execute`].
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) commands: Vec<Command>,
    pub(crate) extensions: BTreeSet<Extension>,
}

impl Script {
    /// The extensions the script requires, for ManageSieve's and the logs' use.
    pub fn extensions(&self) -> impl Iterator<Item = Extension> + '_ {
        self.extensions.iter().copied()
    }

    pub(crate) fn has(&self, extension: Extension) -> bool {
        self.extensions.contains(&extension)
    }
}

/// The capabilities we implement, as `require` names them (ManageSieve's SIEVE capability lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Extension {
    FileInto,
    Envelope,
    Reject,
    Ereject,
    Imap4Flags,
    Copy,
    Body,
    Variables,
    Relational,
    Subaddress,
    Date,
    Index,
    Vacation,
    Mailbox,
    EncodedCharacter,
    ComparatorOctet,
    ComparatorAsciiCasemap,
    ComparatorAsciiNumeric,
}

impl Extension {
    pub const ALL: [Extension; 18] = [
        Extension::FileInto,
        Extension::Envelope,
        Extension::Reject,
        Extension::Ereject,
        Extension::Imap4Flags,
        Extension::Copy,
        Extension::Body,
        Extension::Variables,
        Extension::Relational,
        Extension::Subaddress,
        Extension::Date,
        Extension::Index,
        Extension::Vacation,
        Extension::Mailbox,
        Extension::EncodedCharacter,
        Extension::ComparatorOctet,
        Extension::ComparatorAsciiCasemap,
        Extension::ComparatorAsciiNumeric,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Extension::FileInto => "fileinto",
            Extension::Envelope => "envelope",
            Extension::Reject => "reject",
            Extension::Ereject => "ereject",
            Extension::Imap4Flags => "imap4flags",
            Extension::Copy => "copy",
            Extension::Body => "body",
            Extension::Variables => "variables",
            Extension::Relational => "relational",
            Extension::Subaddress => "subaddress",
            Extension::Date => "date",
            Extension::Index => "index",
            Extension::Vacation => "vacation",
            Extension::Mailbox => "mailbox",
            Extension::EncodedCharacter => "encoded-character",
            Extension::ComparatorOctet => "comparator-i;octet",
            Extension::ComparatorAsciiCasemap => "comparator-i;ascii-casemap",
            Extension::ComparatorAsciiNumeric => "comparator-i;ascii-numeric",
        }
    }

    pub fn from_name(name: &str) -> Option<Extension> {
        Extension::ALL.into_iter().find(|e| e.name().eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    If { branches: Vec<(Test, Vec<Command>)>, otherwise: Vec<Command> },
    Stop,
    Keep { flags: Option<Vec<String>> },
    Discard,
    Redirect { address: String, copy: bool },
    FileInto { mailbox: String, flags: Option<Vec<String>>, copy: bool, create: bool },
    Reject { reason: String, extended: bool },
    Flags { change: FlagChange, variable: Option<String>, flags: Vec<String> },
    Set { name: String, value: String, modifiers: Vec<Modifier> },
    Vacation(Box<VacationCommand>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagChange {
    Set,
    Add,
    Remove,
}

/// RFC 5229 §4.1 modifiers, kept sorted by their precedence (highest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Modifier {
    Lower,
    Upper,
    LowerFirst,
    UpperFirst,
    QuoteWildcard,
    Length,
}

impl Modifier {
    pub(crate) fn precedence(self) -> u8 {
        match self {
            Modifier::Lower | Modifier::Upper => 40,
            Modifier::LowerFirst | Modifier::UpperFirst => 30,
            Modifier::QuoteWildcard => 20,
            Modifier::Length => 10,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct VacationCommand {
    pub days: Option<u64>,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    pub handle: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Match {
    pub comparator: Comparator,
    pub kind: MatchType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressPart {
    All,
    LocalPart,
    Domain,
    User,
    Detail,
}

/// RFC 5260 §6: `:index n [:last]` picks one occurrence of a header field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Index {
    pub n: u64,
    pub last: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum BodyTransform {
    Raw,
    Content(Vec<String>),
    Text,
}

#[derive(Debug, Clone)]
pub(crate) enum Zone {
    /// The zone of the delivery time (RFC 5260 §4.1: "the local time zone").
    Local,
    Fixed(String),
    Original,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    True,
    False,
    Not(Box<Test>),
    AllOf(Vec<Test>),
    AnyOf(Vec<Test>),
    Exists(Vec<String>),
    Size { over: bool, limit: u64 },
    Header { matching: Match, names: Vec<String>, keys: Vec<String>, index: Option<Index> },
    Address { matching: Match, part: AddressPart, names: Vec<String>, keys: Vec<String>, index: Option<Index> },
    Envelope { matching: Match, part: AddressPart, names: Vec<String>, keys: Vec<String> },
    Body { matching: Match, transform: BodyTransform, keys: Vec<String> },
    String { matching: Match, sources: Vec<String>, keys: Vec<String> },
    HasFlag { matching: Match, variables: Option<Vec<String>>, keys: Vec<String> },
    Date { matching: Match, zone: Zone, header: String, part: String, keys: Vec<String>, index: Option<Index> },
    CurrentDate { matching: Match, zone: Zone, part: String, keys: Vec<String> },
    MailboxExists(Vec<String>),
}
