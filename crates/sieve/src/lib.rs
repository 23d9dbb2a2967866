//! Sieve mail filtering (RFC 5228) with the extensions a mail user expects: fileinto and mailbox
//! (RFC 5490), envelope, reject/ereject (RFC 5429), imap4flags (RFC 5232), copy (RFC 3894), body
//! (RFC 5173), variables (RFC 5229), relational (RFC 5231), subaddress (RFC 5233), date and index
//! (RFC 5260), vacation (RFC 5230) and encoded-character.
//!
//! [`parse`] turns a script into a checked [`Script`] or a [`ParseError`] with its line and column
//! (ManageSieve's PUTSCRIPT and CHECKSCRIPT answer with that text). [`execute`] runs a script against one
//! message for one recipient ([`Input`]) and returns the [`Outcome`]: the actions in order, implicit keep
//! included, and any runtime error. A runtime error (a limit, the step budget) never loses mail: the
//! outcome is then a single keep into INBOX, with the error beside it for the caller to log and count.
//!
//! Nothing here does I/O: the mailbox role reads the script and the message, carries out the actions
//! (the reply of a vacation and a redirect go through the queue, a reject becomes a DSN), and keeps the
//! record of whom vacation answered. This crate never touches a database, a socket or a clock.

mod check;
mod compare;
mod date;
mod grammar;
mod input;
mod interpret;
mod lexer;
mod message;
mod outcome;
mod script;
mod vacation;
mod variables;

pub use input::{Envelope, Environment, Input};
pub use lexer::Position;
pub use outcome::{Action, Outcome, VacationRecord, VacationReply};
pub use script::{Extension, Script};

/// What a script may cost. `Default` gives values fit for a multi-user server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of script source.
    pub max_script_size: usize,
    /// Actions one run may collect (keep, fileinto, redirect, vacation…).
    pub max_actions: usize,
    /// Redirects one run may make (each one is a message to another server).
    pub max_redirects: usize,
    /// How deep blocks and tests may nest.
    pub max_nesting: usize,
    /// The CPU budget: commands, tests and comparison work one run may spend.
    pub max_steps: u64,
    /// RFC 5230 §4.1: `:days` is clamped into this range.
    pub vacation_min_days: u64,
    pub vacation_max_days: u64,
    /// Default `:days` when the script gives none (RFC 5230 §4.1 suggests 7).
    pub vacation_default_days: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_script_size: 1 << 20,
            max_actions: 32,
            max_redirects: 4,
            max_nesting: 32,
            max_steps: 1_000_000,
            vacation_min_days: 1,
            vacation_max_days: 30,
            vacation_default_days: 7,
        }
    }
}

/// Why a script was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(at: Position, message: impl Into<String>) -> Self {
        ParseError { line: at.line, column: at.column, message: message.into() }
    }
}

/// Why a run stopped early; the message is then kept in INBOX.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("the script used more than its budget of {0} steps")]
    StepsExhausted(u64),
    #[error("the script made more than {0} actions")]
    TooManyActions(usize),
    #[error("the script made more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("a :matches pattern has more than {0} '*' wildcards")]
    PatternTooComplex(usize),
    #[error("invalid redirect address {0:?}")]
    InvalidRedirect(String),
    #[error("{0}")]
    Conflict(String),
}

/// The CPU budget of one run, counted in steps.
#[derive(Debug)]
pub(crate) struct Budget {
    left: u64,
    limit: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Budget { left: limit, limit }
    }

    pub(crate) fn spend(&mut self, steps: u64) -> Result<(), RuntimeError> {
        self.left = self.left.checked_sub(steps).ok_or(RuntimeError::StepsExhausted(self.limit))?;
        Ok(())
    }
}

/// Parses and checks a script (RFC 5228 §8): every command and test must be known, with arguments of
/// the right kinds, and every extension it uses named in `require` first (§3.2).
pub fn parse(source: &str, limits: &Limits) -> Result<Script, ParseError> {
    if source.len() > limits.max_script_size {
        return Err(ParseError::new(
            Position { line: 1, column: 1 },
            format!("the script is larger than the limit of {} bytes", limits.max_script_size),
        ));
    }
    let tokens = lexer::tokenize(source)?;
    let end = end_position(source);
    let commands = grammar::Parser::new(tokens, end, limits.max_nesting).script()?;
    check::script(&commands)
}

fn end_position(source: &str) -> Position {
    let line = 1 + source.matches('\n').count() as u32;
    let column = 1 + source.rsplit('\n').next().unwrap_or("").chars().count() as u32;
    Position { line, column }
}

/// Runs a script on one message for one recipient (RFC 5228 §2.10).
pub fn execute(script: &Script, input: &Input<'_>, limits: &Limits) -> Outcome {
    interpret::run(script, input, limits)
}
