//! Command lines (RFC 1939 §3): framing with the RFC 2449 length limit, then parsing into [`Command`]; and
//! the raw lines of an AUTH exchange (RFC 5034 §4).

use mailbus_lines::{Decode, LineFramer, LineTooLong};

/// RFC 2449 §4: a command line is at most 255 octets, CRLF included.
pub const MAX_COMMAND_LINE: usize = 255;

/// The longest SASL name (RFC 4422 §3.1) that PLAIN credentials may hold, for [`MAX_SASL_LINE`].
const MAX_CREDENTIAL: usize = 255;

/// RFC 5034 §4 keeps the 255-octet lines of RFC 2449 §4 for the AUTH exchange too, which cuts PLAIN
/// credentials short. We take the larger of that and a PLAIN response (RFC 4616 §2) with a 255-octet user
/// name given as both authzid and authcid and a 255-octet password: 3 × 255 + 2 NULs = 767 octets, in
/// base64 4 × ⌈767 / 3⌉ = 1024, plus CRLF: 1026 octets.
pub const MAX_SASL_LINE: usize = {
    let plain = 3 * MAX_CREDENTIAL + 2;
    let line = plain.div_ceil(3) * 4 + 2;
    if line > MAX_COMMAND_LINE { line } else { MAX_COMMAND_LINE }
};

/// RFC 4422 §3.1: a SASL mechanism name is 1 to 20 characters.
const MAX_MECHANISM: usize = 20;

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
    Top {
        msg: u32,
        lines: u32,
    },
    Capa,
    /// RFC 2595 §4.
    Stls,
    /// RFC 5034 §4: `mechanism` is upper-case; `initial_response` is the base64 text as sent (`=` for an
    /// empty response), kept secret because for PLAIN it holds the password.
    Auth {
        mechanism: String,
        initial_response: Option<Secret>,
    },
    /// AUTH without arguments: the list of SASL mechanisms (RFC 5034 §4 leaves it to the server; clients
    /// such as fetchmail probe with it).
    AuthList,
    /// RFC 6856 §2.
    Utf8,
}

impl Command {
    /// The keyword, upper-case, for logs, metrics and traces: it never carries an argument, so never a
    /// password.
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
            Command::Stls => "STLS",
            Command::Auth { .. } | Command::AuthList => "AUTH",
            Command::Utf8 => "UTF8",
        }
    }
}

pub use mailbus_sasl::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The line went past [`MAX_COMMAND_LINE`] (for [`CommandDecoder::decode_sasl_line`], [`MAX_SASL_LINE`]);
    /// the rest of it up to the next LF is discarded.
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

    /// The next raw line of an AUTH exchange, line ending included, up to [`MAX_SASL_LINE`] octets, for when
    /// the session [expects](crate::session::Session::expects) one. It shares the framing state with
    /// [`Self::decode`], so the tail of an over-long line is skipped whichever of the two reads next.
    pub fn decode_sasl_line(&mut self, input: &[u8]) -> Decode<Vec<u8>, CommandError> {
        self.lines
            .next(input, MAX_SASL_LINE)
            .and_then(|line| Ok(line.to_vec()), |LineTooLong| CommandError::LineTooLong)
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
        b"STLS" => no_args(rest, Command::Stls, "usage: STLS"),
        b"AUTH" => auth(rest),
        b"UTF8" => no_args(rest, Command::Utf8, "usage: UTF8"),
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

/// RFC 5034 §4: `AUTH mechanism [initial-response]`, or a bare `AUTH` for the mechanism list.
fn auth(rest: &[u8]) -> Result<Command, CommandError> {
    const USAGE: &str = "usage: AUTH [mechanism [initial-response]]";
    let (mechanism, initial_response) = match args(rest, USAGE)?[..] {
        [] => return Ok(Command::AuthList),
        [mechanism] => (mechanism, None),
        [mechanism, response] => (mechanism, Some(Secret::new(response))),
        _ => return Err(CommandError::Syntax(USAGE)),
    };
    // RFC 4422 §3.1: upper-case letters, digits, "-" and "_"; we take lower case too.
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if mechanism.len() > MAX_MECHANISM || !mechanism.bytes().all(valid) {
        return Err(CommandError::Syntax(USAGE));
    }
    Ok(Command::Auth { mechanism: mechanism.to_ascii_uppercase(), initial_response })
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
            ("STLS\r\n", Command::Stls),
            ("AUTH\r\n", Command::AuthList),
            ("AUTH PLAIN\r\n", Command::Auth { mechanism: "PLAIN".into(), initial_response: None }),
            (
                "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial_response: Some(Secret::new("AGFsaWNlAHNlY3JldA==")),
                },
            ),
            (
                "AUTH SCRAM-SHA-256 =\r\n",
                Command::Auth { mechanism: "SCRAM-SHA-256".into(), initial_response: Some(Secret::new("=")) },
            ),
            ("UTF8\r\n", Command::Utf8),
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
        assert_eq!(decode_one("stls\r\n"), Ok(Command::Stls));
        assert_eq!(
            decode_one("auth\tplain \r\n"),
            Ok(Command::Auth { mechanism: "PLAIN".into(), initial_response: None })
        );
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
        // For PLAIN the initial response is the password in base64.
        let command = decode_one("AUTH PLAIN AGFsaWNlAGh1bnRlcjI=\r\n").unwrap();
        assert_eq!(format!("{command:?}"), r#"Auth { mechanism: "PLAIN", initial_response: Some(Secret(***)) }"#);
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
            ("STLS now\r\n", "usage: STLS"),
            ("UTF8 on\r\n", "usage: UTF8"),
            ("AUTH PLAIN a b\r\n", "usage: AUTH [mechanism [initial-response]]"),
            ("AUTH PL.AIN\r\n", "usage: AUTH [mechanism [initial-response]]"),
            ("AUTH ABCDEFGHIJKLMNOPQRSTU\r\n", "usage: AUTH [mechanism [initial-response]]"),
            ("AUTH é\r\n", "usage: AUTH [mechanism [initial-response]]"),
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
    fn mechanism_names_may_be_20_characters() {
        let name = "A".repeat(MAX_MECHANISM);
        let command = Command::Auth { mechanism: name.clone(), initial_response: None };
        assert_eq!(decode_one(&format!("AUTH {name}\r\n")), Ok(command));
    }

    #[test]
    fn sasl_line_limit_fits_plain_credentials_of_255_octets() {
        assert_eq!(MAX_SASL_LINE, 1026);
        let name = "n".repeat(MAX_CREDENTIAL);
        let plain = format!("{name}\0{name}\0{}", "p".repeat(MAX_CREDENTIAL));
        let mut line = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, plain).into_bytes();
        line.extend_from_slice(b"\r\n");
        assert_eq!(line.len(), MAX_SASL_LINE);
        let mut decoder = CommandDecoder::default();
        assert_eq!(decoder.decode_sasl_line(&line), Decode::Item { item: line.clone(), consumed: MAX_SASL_LINE });
    }

    #[test]
    fn sasl_lines_of_exactly_the_limit_pass_and_longer_ones_share_the_skipping() {
        let mut line = vec![b'A'; MAX_SASL_LINE - 2];
        line.extend_from_slice(b"\r\n");
        let mut decoder = CommandDecoder::default();
        assert_eq!(decoder.decode_sasl_line(&line), Decode::Item { item: line.clone(), consumed: MAX_SASL_LINE });
        // One more octet is too many; the rest of that line is skipped even by the command decoder.
        let long = vec![b'A'; MAX_SASL_LINE];
        assert_eq!(
            decoder.decode_sasl_line(&long),
            Decode::Invalid { error: CommandError::LineTooLong, consumed: MAX_SASL_LINE }
        );
        assert_eq!(decoder.decode(b"AAA\r\nQUIT\r\n"), Decode::Skip { consumed: 5 });
        assert_eq!(decoder.decode(b"QUIT\r\n"), Decode::Item { item: Command::Quit, consumed: 6 });
        // A SASL line may be longer than a command line.
        let mut longer_than_a_command = vec![b'A'; MAX_COMMAND_LINE * 2];
        longer_than_a_command.extend_from_slice(b"\r\n");
        let whole = Decode::Item { item: longer_than_a_command.clone(), consumed: longer_than_a_command.len() };
        assert_eq!(decoder.decode_sasl_line(&longer_than_a_command), whole);
    }

    #[test]
    fn sasl_lines_decode_at_every_split() {
        let mut input = b"AGFsaWNlAHNlY3JldA==\r\n*\r\n\r\n=\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_SASL_LINE + 10));
        input.extend_from_slice(b"\r\n \t* \r\n");
        let expected = vec![
            Ok(b"AGFsaWNlAHNlY3JldA==\r\n".to_vec()),
            Ok(b"*\r\n".to_vec()),
            Ok(b"\r\n".to_vec()),
            Ok(b"=\n".to_vec()),
            Err(CommandError::LineTooLong),
            Ok(b" \t* \r\n".to_vec()),
        ];
        for (split, decoded) in
            mailbus_lines::decode_at_every_split(&input, CommandDecoder::decode_sasl_line).into_iter().enumerate()
        {
            assert_eq!(decoded, expected, "split at {split}");
        }
    }

    #[test]
    fn partial_line_is_incomplete_until_its_lf() {
        let mut decoder = CommandDecoder::default();
        assert_eq!(decoder.decode(b""), Decode::Incomplete);
        assert_eq!(decoder.decode(b"STAT\r"), Decode::Incomplete);
        assert_eq!(decoder.decode(b"STAT\r\nNO"), Decode::Item { item: Command::Stat, consumed: 6 });
    }
}
