//! Command lines (RFC 1939 §3): framing with the RFC 2449 length limit, then parsing into [`Command`].

use std::fmt;

use mailbus_lines::{Decode, LineFramer, LineTooLong};

/// RFC 2449 §4: a command line is at most 255 octets, CRLF included.
pub const MAX_COMMAND_LINE: usize = 255;

/// An unknown keyword is cut to this many octets before it is echoed back, so the `-ERR` line stays well
/// inside the RFC 2449 §4 limit of 512 octets for a response line.
const MAX_ECHOED_VERB: usize = 40;

/// A parsed command. Message numbers are 1-based and never 0 (RFC 1939 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(Secret),
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Dele(u32),
    Rset,
    Noop,
    Quit,
    Top { msg: u32, lines: u32 },
    Capa,
}

impl Command {
    /// The keyword, upper-case, for logs: it never carries an argument, so never a password.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Top { .. } => "TOP",
            Command::Capa => "CAPA",
        }
    }
}

/// A password. Its `Debug` form hides it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The line went past [`MAX_COMMAND_LINE`]; the rest of it up to the next LF is discarded.
    LineTooLong,
    /// A keyword we do not know, made printable and cut short so it can go into the `-ERR` text. Empty
    /// for a blank line.
    Unknown(String),
    /// A known keyword with bad arguments; the text is its usage.
    Syntax(&'static str),
}

/// Splits the input into command lines and parses them.
#[derive(Debug, Default)]
pub struct CommandDecoder {
    lines: LineFramer,
}

impl CommandDecoder {
    pub fn decode(&mut self, input: &[u8]) -> Decode<Command, CommandError> {
        self.lines.next(input, MAX_COMMAND_LINE).and_then(parse_line, |LineTooLong| CommandError::LineTooLong)
    }
}

/// Parses one line, LF included. RFC 1939 §3: keywords are case-insensitive and arguments are separated
/// by a single space; we also accept runs of spaces or tabs, and a bare LF in place of CRLF.
fn parse_line(line: &[u8]) -> Result<Command, CommandError> {
    let (verb, rest) = split_verb(line);
    match verb.to_ascii_uppercase().as_slice() {
        b"USER" => one_arg(rest, "usage: USER name").map(|name| Command::User(name.to_owned())),
        b"PASS" => pass(rest),
        b"STAT" => no_args(rest, Command::Stat, "usage: STAT"),
        b"LIST" => optional_msg(rest, "usage: LIST [msg]").map(Command::List),
        b"UIDL" => optional_msg(rest, "usage: UIDL [msg]").map(Command::Uidl),
        b"RETR" => msg(rest, "usage: RETR msg").map(Command::Retr),
        b"DELE" => msg(rest, "usage: DELE msg").map(Command::Dele),
        b"RSET" => no_args(rest, Command::Rset, "usage: RSET"),
        b"NOOP" => no_args(rest, Command::Noop, "usage: NOOP"),
        b"QUIT" => no_args(rest, Command::Quit, "usage: QUIT"),
        b"TOP" => top(rest),
        b"CAPA" => no_args(rest, Command::Capa, "usage: CAPA"),
        _ => Err(unknown(verb)),
    }
}

/// Drops the line ending and leading blanks, then splits at the first blank. The rest keeps its bytes
/// exactly, because PASS needs them.
fn split_verb(line: &[u8]) -> (&[u8], &[u8]) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.trim_ascii_start();
    match line.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(blank) => (&line[..blank], &line[blank + 1..]),
        None => (line, &[]),
    }
}

fn unknown(verb: &[u8]) -> CommandError {
    let shown = &verb[..verb.len().min(MAX_ECHOED_VERB)];
    // The verb goes back to the client: escaping keeps control bytes and non-ASCII out of the response.
    CommandError::Unknown(shown.escape_ascii().to_string())
}

/// RFC 1939 §7: PASS has exactly one argument, so a server may treat spaces in it as part of the
/// password. We take everything after the separating blank, byte for byte.
fn pass(rest: &[u8]) -> Result<Command, CommandError> {
    const USAGE: &str = "usage: PASS password";
    match std::str::from_utf8(rest) {
        Ok(password) if !password.is_empty() => Ok(Command::Pass(Secret::new(password))),
        _ => Err(CommandError::Syntax(USAGE)),
    }
}

fn args<'a>(rest: &'a [u8], usage: &'static str) -> Result<Vec<&'a str>, CommandError> {
    let rest = std::str::from_utf8(rest).map_err(|_| CommandError::Syntax(usage))?;
    Ok(rest.split_ascii_whitespace().collect())
}

fn no_args(rest: &[u8], command: Command, usage: &'static str) -> Result<Command, CommandError> {
    match args(rest, usage)?[..] {
        [] => Ok(command),
        _ => Err(CommandError::Syntax(usage)),
    }
}

fn one_arg<'a>(rest: &'a [u8], usage: &'static str) -> Result<&'a str, CommandError> {
    match args(rest, usage)?[..] {
        [arg] => Ok(arg),
        _ => Err(CommandError::Syntax(usage)),
    }
}

fn msg(rest: &[u8], usage: &'static str) -> Result<u32, CommandError> {
    message_number(one_arg(rest, usage)?).ok_or(CommandError::Syntax(usage))
}

fn optional_msg(rest: &[u8], usage: &'static str) -> Result<Option<u32>, CommandError> {
    match args(rest, usage)?[..] {
        [] => Ok(None),
        [arg] => message_number(arg).map(Some).ok_or(CommandError::Syntax(usage)),
        _ => Err(CommandError::Syntax(usage)),
    }
}

/// RFC 1939 §7 TOP: a message number and a non-negative number of lines.
fn top(rest: &[u8]) -> Result<Command, CommandError> {
    const USAGE: &str = "usage: TOP msg lines";
    match args(rest, USAGE)?[..] {
        [msg, lines] => match (message_number(msg), number(lines)) {
            (Some(msg), Some(lines)) => Ok(Command::Top { msg, lines }),
            _ => Err(CommandError::Syntax(USAGE)),
        },
        _ => Err(CommandError::Syntax(USAGE)),
    }
}

/// RFC 1939 §3: message numbers start at 1.
fn message_number(arg: &str) -> Option<u32> {
    number(arg).filter(|&n| n > 0)
}

/// Plain decimal digits that fit a `u32`; `str::parse` alone would also take a leading `+`.
fn number(arg: &str) -> Option<u32> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    arg.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Vec<Result<Command, CommandError>> {
        let mut decoder = CommandDecoder::default();
        let mut out = Vec::new();
        let mut rest = input;
        loop {
            match decoder.decode(rest) {
                Decode::Incomplete => break,
                Decode::Item { item, consumed } => {
                    out.push(Ok(item));
                    rest = &rest[consumed..];
                }
                Decode::Skip { consumed } => rest = &rest[consumed..],
                Decode::Invalid { error, consumed } => {
                    out.push(Err(error));
                    rest = &rest[consumed..];
                }
            }
        }
        out
    }

    fn decode_one(line: &str) -> Result<Command, CommandError> {
        let decoded = decode_all(line.as_bytes());
        assert_eq!(decoded.len(), 1, "{line:?} gave {decoded:?}");
        decoded.into_iter().next().unwrap()
    }

    fn decode_split_everywhere(input: &[u8]) -> Vec<Vec<Result<Command, CommandError>>> {
        mailbus_lines::decode_at_every_split(input, CommandDecoder::decode)
    }

    #[test]
    fn pipelined_commands_decode_in_order_at_every_split() {
        let input =
            b"USER alice\r\nPASS two words\r\nSTAT\r\nLIST\r\nUIDL 2\r\nTOP 1 10\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n";
        let expected = vec![
            Ok(Command::User("alice".into())),
            Ok(Command::Pass(Secret::new("two words"))),
            Ok(Command::Stat),
            Ok(Command::List(None)),
            Ok(Command::Uidl(Some(2))),
            Ok(Command::Top { msg: 1, lines: 10 }),
            Ok(Command::Retr(1)),
            Ok(Command::Dele(1)),
            Ok(Command::Quit),
        ];
        for decoded in decode_split_everywhere(input) {
            assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn every_command_parses() {
        let cases = [
            ("USER alice\r\n", Command::User("alice".into())),
            ("PASS secret\r\n", Command::Pass(Secret::new("secret"))),
            ("STAT\r\n", Command::Stat),
            ("LIST\r\n", Command::List(None)),
            ("LIST 3\r\n", Command::List(Some(3))),
            ("UIDL\r\n", Command::Uidl(None)),
            ("UIDL 4294967295\r\n", Command::Uidl(Some(u32::MAX))),
            ("RETR 1\r\n", Command::Retr(1)),
            ("DELE 12\r\n", Command::Dele(12)),
            ("RSET\r\n", Command::Rset),
            ("NOOP\r\n", Command::Noop),
            ("QUIT\r\n", Command::Quit),
            ("TOP 1 0\r\n", Command::Top { msg: 1, lines: 0 }),
            ("CAPA\r\n", Command::Capa),
        ];
        for (line, command) in cases {
            assert!(line.starts_with(command.keyword()), "{line:?}");
            assert_eq!(decode_one(line), Ok(command), "{line:?}");
        }
    }

    #[test]
    fn keywords_are_case_insensitive_and_blanks_are_lenient() {
        assert_eq!(decode_one("stat\r\n"), Ok(Command::Stat));
        assert_eq!(decode_one("Top  2   5 \r\n"), Ok(Command::Top { msg: 2, lines: 5 }));
        assert_eq!(decode_one("  list\t7\r\n"), Ok(Command::List(Some(7))));
        assert_eq!(decode_one("user bob\n"), Ok(Command::User("bob".into())));
        assert_eq!(decode_one("NOOP \r\n"), Ok(Command::Noop));
        assert_eq!(decode_one("retr 007\r\n"), Ok(Command::Retr(7)));
    }

    #[test]
    fn pass_takes_the_rest_of_the_line_verbatim() {
        assert_eq!(decode_one("PASS  spaced out \r\n"), Ok(Command::Pass(Secret::new(" spaced out "))));
        assert_eq!(decode_one("pass p@ss w0rd\n"), Ok(Command::Pass(Secret::new("p@ss w0rd"))));
        assert_eq!(decode_one("PASS\r\n"), Err(CommandError::Syntax("usage: PASS password")));
        assert_eq!(decode_one("PASS \r\n"), Err(CommandError::Syntax("usage: PASS password")));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let command = Command::Pass(Secret::new("hunter2"));
        let shown = format!("{command:?}");
        assert_eq!(shown, "Pass(Secret(***))");
        let Command::Pass(secret) = command else { unreachable!() };
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn bad_arguments_are_syntax_errors() {
        let cases = [
            ("USER\r\n", "usage: USER name"),
            ("USER a b\r\n", "usage: USER name"),
            ("STAT 1\r\n", "usage: STAT"),
            ("LIST 1 2\r\n", "usage: LIST [msg]"),
            ("LIST 0\r\n", "usage: LIST [msg]"),
            ("UIDL x\r\n", "usage: UIDL [msg]"),
            ("RETR\r\n", "usage: RETR msg"),
            ("RETR -1\r\n", "usage: RETR msg"),
            ("RETR +1\r\n", "usage: RETR msg"),
            ("DELE 1.5\r\n", "usage: DELE msg"),
            ("TOP 1\r\n", "usage: TOP msg lines"),
            ("TOP 0 1\r\n", "usage: TOP msg lines"),
            ("TOP 1 -1\r\n", "usage: TOP msg lines"),
            ("RSET now\r\n", "usage: RSET"),
            ("QUIT please\r\n", "usage: QUIT"),
            ("CAPA x\r\n", "usage: CAPA"),
            ("NOOP x\r\n", "usage: NOOP"),
        ];
        for (line, usage) in cases {
            assert_eq!(decode_one(line), Err(CommandError::Syntax(usage)), "{line:?}");
        }
    }

    #[test]
    fn huge_numbers_are_syntax_errors_not_overflows() {
        assert_eq!(decode_one("RETR 4294967296\r\n"), Err(CommandError::Syntax("usage: RETR msg")));
        let huge = format!("TOP 1 {}\r\n", "9".repeat(200));
        assert_eq!(decode_one(&huge), Err(CommandError::Syntax("usage: TOP msg lines")));
        assert_eq!(decode_one("TOP 4294967295 4294967295\r\n"), Ok(Command::Top { msg: u32::MAX, lines: u32::MAX }));
    }

    #[test]
    fn unknown_commands_carry_a_printable_verb() {
        assert_eq!(
            decode_one("APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"),
            Err(CommandError::Unknown("APOP".into()))
        );
        assert_eq!(decode_one("\r\n"), Err(CommandError::Unknown(String::new())));
        assert_eq!(decode_all(b"X\x01\xff\r\n"), vec![Err(CommandError::Unknown("X\\x01\\xff".into()))]);
        let long = format!("{}\r\n", "Z".repeat(200));
        assert_eq!(decode_one(&long), Err(CommandError::Unknown("Z".repeat(MAX_ECHOED_VERB))));
    }

    #[test]
    fn non_utf8_arguments_are_errors_not_panics() {
        let decoded = decode_all(b"USER \xff\xfe\r\nPASS \xc3\r\nLIST \x80\r\nTOP \xff 1\r\n\xe2\x82\r\n");
        assert_eq!(
            decoded,
            vec![
                Err(CommandError::Syntax("usage: USER name")),
                Err(CommandError::Syntax("usage: PASS password")),
                Err(CommandError::Syntax("usage: LIST [msg]")),
                Err(CommandError::Syntax("usage: TOP msg lines")),
                Err(CommandError::Unknown("\\xe2\\x82".into())),
            ]
        );
    }

    #[test]
    fn over_long_line_is_one_error_and_the_next_line_still_parses() {
        let mut input = b"NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 2000));
        input.extend_from_slice(b"\r\nQUIT\r\n");
        for decoded in decode_split_everywhere(&input) {
            assert_eq!(decoded, vec![Err(CommandError::LineTooLong), Ok(Command::Quit)]);
        }
    }

    #[test]
    fn line_of_exactly_255_octets_is_accepted() {
        let mut line = b"PASS ".to_vec();
        line.extend(std::iter::repeat_n(b'x', MAX_COMMAND_LINE - 7));
        line.extend_from_slice(b"\r\n");
        assert_eq!(line.len(), MAX_COMMAND_LINE);
        assert!(matches!(&decode_all(&line)[..], [Ok(Command::Pass(p))] if p.expose().len() == MAX_COMMAND_LINE - 7));
        line.insert(5, b'x');
        assert_eq!(decode_all(&line), vec![Err(CommandError::LineTooLong)]);
    }

    #[test]
    fn partial_line_is_incomplete_until_its_lf() {
        let mut decoder = CommandDecoder::default();
        assert_eq!(decoder.decode(b""), Decode::Incomplete);
        assert_eq!(decoder.decode(b"STAT\r"), Decode::Incomplete);
        assert_eq!(decoder.decode(b"STAT\r\nNO"), Decode::Item { item: Command::Stat, consumed: 6 });
    }
}
