//! Command framing (RFC 5804 §4): a command is one line of atoms and strings, where a string is quoted or
//! a literal (`{n+}` or `{n}`, then CRLF, then n octets) after which the line goes on. [`CommandDecoder`]
//! turns bytes into [`Line`]s of [`Token`]s under a line limit and a literal limit; [`Command::parse`]
//! turns a line into a command. The AUTHENTICATE exchange's client responses are lines too (a single
//! string), which the session reads from the same decoder.

use mailbus_lines::Decode;

pub use mailbus_sasl::Secret;

/// The text of one command outside its literals, CRLF included. RFC 5804 sets no limit; Dovecot's
/// `managesieve_max_line_length` is 64 KiB, which holds literals too. Ours leaves literals out, so 8 KiB
/// is far more than any command needs (quoted strings are at most 1024 octets, §4).
pub const MAX_LINE: usize = 8 * 1024;

/// Before login the only literal a client needs is a SASL response; PLAIN with 255-octet names and
/// password is 1 KiB in base64.
pub const MAX_LITERAL_BEFORE_LOGIN: usize = 8 * 1024;

/// RFC 5804 §4: a quoted string holds at most 1024 characters.
const MAX_QUOTED: usize = 1024;

/// Script names we accept, in octets. RFC 5804 §1.6 leaves the limit to the server; Dovecot's is 256
/// characters.
pub const MAX_NAME: usize = 512;

/// One element of a command line.
#[derive(Clone, PartialEq, Eq)]
pub enum Token {
    /// A bare word: a command name, a number, or a string a lenient client did not quote.
    Atom(String),
    /// A quoted string or a literal, as octets (checked for UTF-8 where the command needs text).
    String(Vec<u8>),
}

// Strings can hold a password (AUTHENTICATE's initial response): print their length only.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Atom(atom) => write!(f, "Atom({atom:?})"),
            Token::String(octets) => write!(f, "String({} octets)", octets.len()),
        }
    }
}

/// A complete command line, literals included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The text of a line went past [`MAX_LINE`]. The connection cannot find the next command with any
    /// certainty, so the session says BYE.
    LineTooLong,
    /// A literal longer than the decoder's limit. Its octets and the rest of its line were skipped, not
    /// kept, so the next command is read as usual.
    LiteralTooLarge,
    /// A line that does not tokenize: an unterminated quoted string, a bad literal header, a control byte.
    Syntax(&'static str),
    /// A command name we do not know, printable and cut short to go back in the NO text.
    Unknown(String),
}

#[derive(Debug)]
enum Framing {
    /// Reading the text of a line; `tokens` holds what came before a literal.
    Text,
    /// A literal header was read: `left` octets of it are still to come.
    Literal { left: usize, data: Vec<u8> },
    /// An oversized literal: its octets are dropped as they come, then the rest of the line.
    SkipLiteral { left: usize },
    /// Dropping up to the end of the line, then reporting `error`.
    SkipLine { error: CommandError },
    /// A line ran past [`MAX_LINE`]: nothing more is read.
    Broken,
}

/// Splits input into [`Line`]s. It keeps the tokens of a line while its literals arrive, and no more than
/// [`MAX_LINE`] of text plus `max_literal` of literals, all of a line's literals together (PUTSCRIPT's
/// name and script fit; a line that goes on with literal after literal does not), of any client's bytes.
#[derive(Debug)]
pub struct CommandDecoder {
    framing: Framing,
    tokens: Vec<Token>,
    /// Octets of the current line's text so far (not its literals), against [`MAX_LINE`].
    text_len: usize,
    /// Octets of the current line's literals so far, against `max_literal`.
    literals_len: usize,
    max_literal: usize,
}

impl Default for CommandDecoder {
    fn default() -> Self {
        CommandDecoder::new(MAX_LITERAL_BEFORE_LOGIN)
    }
}

impl CommandDecoder {
    pub fn new(max_literal: usize) -> Self {
        CommandDecoder { framing: Framing::Text, tokens: Vec::new(), text_len: 0, literals_len: 0, max_literal }
    }

    /// After login, scripts come as literals: the limit becomes the largest script we would store.
    pub fn set_max_literal(&mut self, max_literal: usize) {
        self.max_literal = max_literal;
    }

    /// The next line, or the bytes to drop on the way to it. A line with literals is reported in pieces:
    /// each piece before a literal, and each literal, is a `Skip` whose tokens the decoder keeps.
    pub fn decode(&mut self, input: &[u8]) -> Decode<Line, CommandError> {
        match &mut self.framing {
            // Never a zero-octet skip: the caller would ask again forever.
            Framing::Broken if input.is_empty() => Decode::Incomplete,
            Framing::Broken => Decode::Skip { consumed: input.len() },
            Framing::Literal { left, data } => {
                if input.is_empty() {
                    return Decode::Incomplete;
                }
                let take = (*left).min(input.len());
                data.extend_from_slice(&input[..take]);
                *left -= take;
                if *left == 0 {
                    let data = std::mem::take(data);
                    self.tokens.push(Token::String(data));
                    self.framing = Framing::Text;
                }
                Decode::Skip { consumed: take }
            }
            Framing::SkipLiteral { left } => {
                if input.is_empty() {
                    return Decode::Incomplete;
                }
                let take = (*left).min(input.len());
                *left -= take;
                if *left == 0 {
                    self.framing = Framing::SkipLine { error: CommandError::LiteralTooLarge };
                }
                Decode::Skip { consumed: take }
            }
            Framing::SkipLine { error } => match input.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    let error = error.clone();
                    self.reset();
                    Decode::Invalid { error, consumed: lf + 1 }
                }
                None if input.is_empty() => Decode::Incomplete,
                None => Decode::Skip { consumed: input.len() },
            },
            Framing::Text => self.text(input),
        }
    }

    fn reset(&mut self) {
        self.framing = Framing::Text;
        self.tokens.clear();
        self.text_len = 0;
        self.literals_len = 0;
    }

    /// A piece of line text up to its LF: the end of the line, or a literal header.
    fn text(&mut self, input: &[u8]) -> Decode<Line, CommandError> {
        let room = MAX_LINE - self.text_len;
        let Some(lf) = input.iter().position(|&b| b == b'\n') else {
            if input.len() >= room {
                self.framing = Framing::Broken;
                return Decode::Invalid { error: CommandError::LineTooLong, consumed: input.len() };
            }
            return Decode::Incomplete;
        };
        if lf >= room {
            self.framing = Framing::Broken;
            return Decode::Invalid { error: CommandError::LineTooLong, consumed: lf + 1 };
        }
        self.text_len += lf + 1;
        let piece = &input[..lf];
        let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
        let consumed = lf + 1;
        match tokenize(piece, &mut self.tokens) {
            Err(error) => {
                self.reset();
                Decode::Invalid { error, consumed }
            }
            Ok(None) => {
                let tokens = std::mem::take(&mut self.tokens);
                self.reset();
                Decode::Item { item: Line { tokens }, consumed }
            }
            Ok(Some(size)) if size > self.max_literal.saturating_sub(self.literals_len) => {
                self.tokens.clear();
                // `size` is at least 1 here, so the skip ends.
                self.framing = Framing::SkipLiteral { left: size };
                Decode::Skip { consumed }
            }
            Ok(Some(0)) => {
                self.tokens.push(Token::String(Vec::new()));
                Decode::Skip { consumed }
            }
            Ok(Some(size)) => {
                // Grows as the octets come, so a client that announces more than it sends holds nothing.
                self.literals_len += size;
                self.framing = Framing::Literal { left: size, data: Vec::new() };
                Decode::Skip { consumed }
            }
        }
    }
}

/// Splits a piece of line text into tokens. `Some(n)` when it ends in a literal header of n octets.
/// RFC 5804 §4 separates with one SP; runs of blanks are accepted.
fn tokenize(mut text: &[u8], tokens: &mut Vec<Token>) -> Result<Option<usize>, CommandError> {
    loop {
        text = text.trim_ascii_start();
        let Some(&first) = text.first() else { return Ok(None) };
        match first {
            b'"' => {
                let (string, rest) = quoted(&text[1..])?;
                tokens.push(Token::String(string));
                text = rest;
            }
            b'{' => {
                let size = literal_header(&text[1..])?;
                return Ok(Some(size));
            }
            _ => {
                let end = text.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(text.len());
                let atom = &text[..end];
                if atom.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'"' || b == b'{') {
                    return Err(CommandError::Syntax("bad character in an atom"));
                }
                let atom = std::str::from_utf8(atom).map_err(|_| CommandError::Syntax("atom is not UTF-8"))?;
                tokens.push(Token::Atom(atom.to_owned()));
                text = &text[end..];
            }
        }
        if !text.is_empty() && !matches!(text[0], b' ' | b'\t') {
            return Err(CommandError::Syntax("missing space between arguments"));
        }
    }
}

/// RFC 5804 §4 quoted: up to 1024 characters, `\"` and `\\` escaped, no CR, LF or NUL.
fn quoted(text: &[u8]) -> Result<(Vec<u8>, &[u8]), CommandError> {
    let mut out = Vec::new();
    let mut bytes = text.iter().enumerate();
    while let Some((at, &byte)) = bytes.next() {
        match byte {
            b'"' => {
                if out.len() > MAX_QUOTED * 4 {
                    return Err(CommandError::Syntax("quoted string too long"));
                }
                return Ok((out, &text[at + 1..]));
            }
            b'\\' => match bytes.next() {
                Some((_, &escaped @ (b'"' | b'\\'))) => out.push(escaped),
                _ => return Err(CommandError::Syntax("bad escape in a quoted string")),
            },
            0 | b'\r' | b'\n' => return Err(CommandError::Syntax("bad character in a quoted string")),
            _ => out.push(byte),
        }
    }
    Err(CommandError::Syntax("unterminated quoted string"))
}

/// `n+}` or `n}` at the end of the text: RFC 5804 §4 has clients send `{n+}`; `{n}`, which Dovecot and
/// Cyrus take too, needs no continuation from us either.
fn literal_header(text: &[u8]) -> Result<usize, CommandError> {
    const BAD: CommandError = CommandError::Syntax("bad literal");
    let digits = text.strip_suffix(b"}").ok_or(BAD)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    // At most ten digits: fits in u64, and anything past usize is too large anyway.
    let size: u64 = std::str::from_utf8(digits).map_err(|_| BAD)?.parse().map_err(|_| BAD)?;
    Ok(usize::try_from(size).unwrap_or(usize::MAX))
}

/// A script name (RFC 5804 §1.6): UTF-8, 1 to [`MAX_NAME`] octets, no control characters (U+0000–001F,
/// U+007F–009F) and no line or paragraph separator (U+2028, U+2029).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScriptName(String);

impl ScriptName {
    pub fn parse(octets: &[u8]) -> Result<ScriptName, &'static str> {
        let name = std::str::from_utf8(octets).map_err(|_| "script name is not UTF-8")?;
        if name.is_empty() {
            return Err("script name is empty");
        }
        if name.len() > MAX_NAME {
            return Err("script name is too long");
        }
        if name.chars().any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}') {
            return Err("script name contains a control character");
        }
        Ok(ScriptName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A parsed command (RFC 5804 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// §2.1: `mechanism` upper-case; the initial response is base64 text.
    Authenticate {
        mechanism: String,
        initial_response: Option<Secret>,
    },
    StartTls,
    Logout,
    Capability,
    HaveSpace {
        name: ScriptName,
        size: u64,
    },
    /// `content` is the script's octets, checked for UTF-8 by the session.
    PutScript {
        name: ScriptName,
        content: Vec<u8>,
    },
    ListScripts,
    /// An empty name deactivates every script (§2.8).
    SetActive {
        name: Option<ScriptName>,
    },
    GetScript {
        name: ScriptName,
    },
    DeleteScript {
        name: ScriptName,
    },
    RenameScript {
        old_name: ScriptName,
        new_name: ScriptName,
    },
    CheckScript {
        content: Vec<u8>,
    },
    /// §2.11: the tag, if any, comes back in the OK's TAG response code.
    Noop {
        tag: Option<String>,
    },
    Unauthenticate,
}

impl Command {
    /// The command name, upper-case, for logs and metrics: never an argument, so never a password.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::Authenticate { .. } => "AUTHENTICATE",
            Command::StartTls => "STARTTLS",
            Command::Logout => "LOGOUT",
            Command::Capability => "CAPABILITY",
            Command::HaveSpace { .. } => "HAVESPACE",
            Command::PutScript { .. } => "PUTSCRIPT",
            Command::ListScripts => "LISTSCRIPTS",
            Command::SetActive { .. } => "SETACTIVE",
            Command::GetScript { .. } => "GETSCRIPT",
            Command::DeleteScript { .. } => "DELETESCRIPT",
            Command::RenameScript { .. } => "RENAMESCRIPT",
            Command::CheckScript { .. } => "CHECKSCRIPT",
            Command::Noop { .. } => "NOOP",
            Command::Unauthenticate => "UNAUTHENTICATE",
        }
    }

    /// RFC 5804 §2: command names are case-insensitive atoms; arguments are strings (names, scripts)
    /// or numbers (HAVESPACE's size).
    pub fn parse(line: Line) -> Result<Command, CommandError> {
        let mut tokens = line.tokens.into_iter();
        let name = match tokens.next() {
            Some(Token::Atom(name)) => name.to_ascii_uppercase(),
            Some(Token::String(_)) => return Err(CommandError::Syntax("a command starts with its name")),
            None => return Err(CommandError::Unknown(String::new())),
        };
        let args: Vec<Token> = tokens.collect();
        let usage = |text: &'static str| CommandError::Syntax(text);
        match (name.as_str(), args.as_slice()) {
            ("AUTHENTICATE", [mechanism]) => Ok(authenticate(mechanism, None)?),
            ("AUTHENTICATE", [mechanism, response]) => Ok(authenticate(mechanism, Some(response))?),
            ("AUTHENTICATE", _) => Err(usage("usage: AUTHENTICATE mechanism [initial-response]")),
            ("STARTTLS", []) => Ok(Command::StartTls),
            ("LOGOUT", []) => Ok(Command::Logout),
            ("CAPABILITY", []) => Ok(Command::Capability),
            ("HAVESPACE", [name, size]) => {
                let size = number(size).ok_or(usage("usage: HAVESPACE name size"))?;
                Ok(Command::HaveSpace { name: script_name(name)?, size })
            }
            ("PUTSCRIPT", [name, Token::String(content)]) => {
                Ok(Command::PutScript { name: script_name(name)?, content: content.clone() })
            }
            ("LISTSCRIPTS", []) => Ok(Command::ListScripts),
            ("SETACTIVE", [Token::String(name)]) if name.is_empty() => Ok(Command::SetActive { name: None }),
            ("SETACTIVE", [name]) => Ok(Command::SetActive { name: Some(script_name(name)?) }),
            ("GETSCRIPT", [name]) => Ok(Command::GetScript { name: script_name(name)? }),
            ("DELETESCRIPT", [name]) => Ok(Command::DeleteScript { name: script_name(name)? }),
            ("RENAMESCRIPT", [old, new]) => {
                Ok(Command::RenameScript { old_name: script_name(old)?, new_name: script_name(new)? })
            }
            ("CHECKSCRIPT", [Token::String(content)]) => Ok(Command::CheckScript { content: content.clone() }),
            ("NOOP", []) => Ok(Command::Noop { tag: None }),
            ("NOOP", [tag]) => Ok(Command::Noop { tag: Some(text(tag).ok_or(usage("usage: NOOP [tag]"))?) }),
            ("UNAUTHENTICATE", []) => Ok(Command::Unauthenticate),
            ("STARTTLS" | "LOGOUT" | "CAPABILITY" | "LISTSCRIPTS" | "UNAUTHENTICATE", _) => {
                Err(usage("this command takes no arguments"))
            }
            ("HAVESPACE", _) => Err(usage("usage: HAVESPACE name size")),
            ("PUTSCRIPT", _) => Err(usage("usage: PUTSCRIPT name script")),
            ("SETACTIVE", _) => Err(usage("usage: SETACTIVE name")),
            ("GETSCRIPT", _) => Err(usage("usage: GETSCRIPT name")),
            ("DELETESCRIPT", _) => Err(usage("usage: DELETESCRIPT name")),
            ("RENAMESCRIPT", _) => Err(usage("usage: RENAMESCRIPT old-name new-name")),
            ("CHECKSCRIPT", _) => Err(usage("usage: CHECKSCRIPT script")),
            ("NOOP", _) => Err(usage("usage: NOOP [tag]")),
            _ => Err(unknown(&name)),
        }
    }
}

/// A client's response in the AUTHENTICATE exchange (RFC 5804 §2.1): one string, base64 or `"*"`.
pub fn parse_sasl_response(line: Line) -> Result<Secret, CommandError> {
    match line.tokens.as_slice() {
        [token] => text(token).map(Secret::new).ok_or(CommandError::Syntax("the response is not text")),
        _ => Err(CommandError::Syntax("expected one string")),
    }
}

fn authenticate(mechanism: &Token, response: Option<&Token>) -> Result<Command, CommandError> {
    let mechanism = text(mechanism).ok_or(CommandError::Syntax("bad mechanism name"))?.to_ascii_uppercase();
    let initial_response = match response {
        Some(token) => Some(Secret::new(text(token).ok_or(CommandError::Syntax("bad initial response"))?)),
        None => None,
    };
    Ok(Command::Authenticate { mechanism, initial_response })
}

fn text(token: &Token) -> Option<String> {
    match token {
        Token::Atom(atom) => Some(atom.clone()),
        Token::String(octets) => String::from_utf8(octets.clone()).ok(),
    }
}

/// Names are strings; an atom is accepted too, as Dovecot does.
fn script_name(token: &Token) -> Result<ScriptName, CommandError> {
    let octets = match token {
        Token::Atom(atom) => atom.as_bytes(),
        Token::String(octets) => octets,
    };
    ScriptName::parse(octets).map_err(CommandError::Syntax)
}

/// RFC 5804 §4 number: 0 to 4294967295.
fn number(token: &Token) -> Option<u64> {
    match token {
        Token::Atom(digits)
            if !digits.is_empty() && digits.len() <= 10 && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            digits.parse().ok().filter(|&n| n <= u64::from(u32::MAX))
        }
        _ => None,
    }
}

/// An unknown command name goes back to the client escaped and cut short.
fn unknown(name: &str) -> CommandError {
    let shown: String = name.chars().take(40).collect();
    CommandError::Unknown(shown.escape_default().to_string())
}

#[cfg(test)]
mod tests {
    use mailbus_lines::decode_at_every_split;

    use super::*;

    fn lines(input: &[u8]) -> Vec<Result<Line, CommandError>> {
        let all = decode_at_every_split(input, |decoder: &mut CommandDecoder, bytes| decoder.decode(bytes));
        for (split, got) in all.iter().enumerate() {
            assert_eq!(got, &all[0], "split at {split}");
        }
        all.into_iter().next().unwrap_or_default()
    }

    fn string(text: &str) -> Token {
        Token::String(text.as_bytes().to_vec())
    }

    fn atom(text: &str) -> Token {
        Token::Atom(text.to_owned())
    }

    #[test]
    fn atoms_quoted_strings_and_literals_at_every_split() {
        let input = b"PUTSCRIPT \"my \\\"script\\\"\" {9+}\r\nkeep;\r\n\r\n\r\nlistscripts\r\nPUTSCRIPT {3}\r\nabc {0+}\r\n\r\n";
        let got = lines(input);
        assert_eq!(
            got,
            vec![
                Ok(Line { tokens: vec![atom("PUTSCRIPT"), string("my \"script\""), string("keep;\r\n\r\n")] }),
                Ok(Line { tokens: vec![atom("listscripts")] }),
                Ok(Line { tokens: vec![atom("PUTSCRIPT"), string("abc"), string("")] }),
            ]
        );
    }

    #[test]
    fn a_literal_over_the_limit_is_skipped_and_reported_once() {
        let mut input = b"PUTSCRIPT \"big\" {20000+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 20000));
        input.extend_from_slice(b" trailing\r\nNOOP\r\n");
        let got = lines(&input);
        assert_eq!(got, vec![Err(CommandError::LiteralTooLarge), Ok(Line { tokens: vec![atom("NOOP")] })]);
    }

    /// Literals count together: a line that goes on with literal after literal, each under the limit,
    /// is refused once they pass it in all (8 KiB before login: two of 5,000 octets are too many).
    #[test]
    fn a_line_whose_literals_together_pass_the_limit_is_skipped() {
        let mut input = b"PUTSCRIPT {5000+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b" {5000+}\r\n");
        input.extend(std::iter::repeat_n(b'y', 5000));
        input.extend_from_slice(b"\r\nNOOP\r\nPUTSCRIPT {3000+}\r\n");
        input.extend(std::iter::repeat_n(b'z', 3000));
        input.extend_from_slice(b" {3000+}\r\n");
        input.extend(std::iter::repeat_n(b'z', 3000));
        input.extend_from_slice(b"\r\n");
        let got = lines(&input);
        let z = "z".repeat(3000);
        assert_eq!(
            got,
            vec![
                Err(CommandError::LiteralTooLarge),
                Ok(Line { tokens: vec![atom("NOOP")] }),
                Ok(Line { tokens: vec![atom("PUTSCRIPT"), string(&z), string(&z)] }),
            ]
        );
    }

    #[test]
    fn a_line_over_the_limit_breaks_the_stream() {
        let mut input = vec![b'A'; MAX_LINE + 10];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(lines(&input), vec![Err(CommandError::LineTooLong)]);
        // Text across literals counts together.
        let mut input = Vec::new();
        for _ in 0..(MAX_LINE / 8) {
            input.extend_from_slice(b"a {1+}\r\nx");
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(lines(&input), vec![Err(CommandError::LineTooLong)]);
    }

    #[test]
    fn bad_lines_are_errors_and_the_next_line_still_parses() {
        for bad in [&b"PUTSCRIPT \"open\r\n"[..], b"X {12a}\r\n", b"X \"a\\n\"\r\n", b"X \"a\"b\r\n", b"X a\x01\r\n"] {
            let mut input = bad.to_vec();
            input.extend_from_slice(b"NOOP\r\n");
            let got = lines(&input);
            assert!(matches!(got[0], Err(CommandError::Syntax(_))), "{}: {got:?}", bad.escape_ascii());
            assert_eq!(got[1], Ok(Line { tokens: vec![atom("NOOP")] }));
        }
    }

    #[test]
    fn commands_parse_with_their_arguments() {
        let parse = |tokens: Vec<Token>| Command::parse(Line { tokens });
        let name = |text: &str| ScriptName::parse(text.as_bytes()).unwrap();
        assert_eq!(
            parse(vec![atom("havespace"), string("a"), atom("1024")]),
            Ok(Command::HaveSpace { name: name("a"), size: 1024 })
        );
        assert_eq!(parse(vec![atom("SETACTIVE"), string("")]), Ok(Command::SetActive { name: None }));
        assert_eq!(
            parse(vec![atom("RenameScript"), string("a"), string("b")]),
            Ok(Command::RenameScript { old_name: name("a"), new_name: name("b") })
        );
        assert_eq!(parse(vec![atom("NOOP"), string("t1")]), Ok(Command::Noop { tag: Some("t1".into()) }));
        assert!(matches!(
            parse(vec![atom("AUTHENTICATE"), string("plain"), string("AGEAYg==")]),
            Ok(Command::Authenticate { mechanism, initial_response: Some(_) }) if mechanism == "PLAIN"
        ));
        assert!(matches!(
            parse(vec![atom("HAVESPACE"), string("a"), atom("99999999999")]),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(parse(vec![atom("GETSCRIPT"), string("a\nb")]), Err(CommandError::Syntax(_))));
        assert!(matches!(parse(vec![atom("GETSCRIPT"), string("")]), Err(CommandError::Syntax(_))));
        assert!(matches!(parse(vec![atom("GETSCRIPT"), string("a\u{2028}")]), Err(CommandError::Syntax(_))));
        assert_eq!(parse(vec![atom("FROB")]), Err(CommandError::Unknown("FROB".into())));
        assert!(matches!(parse(vec![atom("LOGOUT"), atom("now")]), Err(CommandError::Syntax(_))));
    }
}
