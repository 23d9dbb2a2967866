//! Command lines: framing with the RFC 5321 length limit, then parsing by `smtp-proto`.

use std::borrow::Cow;

use smtp_proto::Request;

use mailbus_lines::{Decode, LineFramer, LineTooLong};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, CRLF included.
pub const MAX_COMMAND_LINE: usize = 512;

/// RFC 4954 §4: a line of a SASL exchange (a response to a 334 challenge) may be up to 12288 octets.
pub const MAX_SASL_LINE: usize = 12288;

/// `RCPT TO:<postmaster>` (RFC 5321 §4.5.1) arrives as this address, without a domain; the session makes it
/// `postmaster@<hostname>`.
pub const POSTMASTER: &str = "postmaster";

/// A parsed command, owning its strings.
pub type Command = Request<String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The line went past [`MAX_COMMAND_LINE`]; the rest of it up to the next LF is discarded.
    LineTooLong,
    /// A verb we do not know.
    Unknown,
    /// `MAIL FROM:<…>` with an address that is not one.
    InvalidSender,
    /// `RCPT TO:<…>` with an address that is not one.
    InvalidRecipient,
    /// A known verb with bad arguments; the text says what was expected.
    Syntax(String),
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

    /// The next raw line of a SASL exchange, CRLF included, for when the session
    /// [expects](crate::session::Session::expects) one. It shares the framing state with [`Self::decode`], so
    /// the tail of an over-long line is skipped whichever of the two reads next.
    pub fn decode_sasl_line(&mut self, input: &[u8]) -> Decode<Vec<u8>, CommandError> {
        self.lines
            .next(input, MAX_SASL_LINE)
            .and_then(|line| Ok(line.to_vec()), |LineTooLong| CommandError::LineTooLong)
    }
}

fn parse_line(line: &[u8]) -> Result<Command, CommandError> {
    let mut iter = line.iter();
    match Request::parse(&mut iter) {
        Ok(request) => check(own(request), line),
        Err(smtp_proto::Error::UnknownCommand) => Err(CommandError::Unknown),
        Err(smtp_proto::Error::SyntaxError { syntax }) => Err(CommandError::Syntax(format!("syntax: {syntax}"))),
        Err(smtp_proto::Error::InvalidSenderAddress) => Err(CommandError::InvalidSender),
        Err(smtp_proto::Error::InvalidRecipientAddress) => Err(CommandError::InvalidRecipient),
        Err(smtp_proto::Error::InvalidParameter { param }) => {
            Err(CommandError::Syntax(format!("invalid parameter {param}")))
        }
        Err(smtp_proto::Error::UnsupportedParameter { param }) => {
            Err(CommandError::Syntax(format!("unsupported parameter {param}")))
        }
        Err(other) => Err(CommandError::Syntax(format!("{other:?}").to_lowercase())),
    }
}

fn own(request: Request<Cow<'_, str>>) -> Command {
    request.into_owned()
}

/// Fixes what smtp-proto's parser leaves ambiguous or lets through.
fn check(request: Command, line: &[u8]) -> Result<Command, CommandError> {
    match request {
        // smtp-proto returns an empty address for `<>`, for `<postmaster>` and for a bare source route.
        Request::Mail { from } if from.address.is_empty() => match path_text(line) {
            Some(b"") => Ok(Request::Mail { from }),
            // RFC 5321 §4.1.2: only the forward-path may be a bare `<Postmaster>`.
            _ => Err(CommandError::InvalidSender),
        },
        Request::Rcpt { mut to } if to.address.is_empty() => match path_text(line) {
            Some(text) if text.eq_ignore_ascii_case(POSTMASTER.as_bytes()) => {
                to.address = POSTMASTER.to_owned();
                Ok(Request::Rcpt { to })
            }
            // `RCPT TO:<>` names nobody.
            _ => Err(CommandError::InvalidRecipient),
        },
        // RFC 3207 §4: STARTTLS takes no parameters; smtp-proto ignores any.
        Request::StartTls if has_arguments(line) => Err(CommandError::Syntax("Syntax: STARTTLS".into())),
        other => Ok(other),
    }
}

/// The text between the first `<` and the next `>`, without surrounding spaces.
fn path_text(line: &[u8]) -> Option<&[u8]> {
    let start = line.iter().position(|&b| b == b'<')? + 1;
    let len = line[start..].iter().position(|&b| b == b'>')?;
    Some(line[start..start + len].trim_ascii())
}

fn has_arguments(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    line.iter().position(|b| b.is_ascii_whitespace()).is_some_and(|verb_end| !line[verb_end..].trim_ascii().is_empty())
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

    fn decode_split_everywhere(input: &[u8]) -> Vec<Vec<Result<Command, CommandError>>> {
        mailbus_lines::decode_at_every_split(input, CommandDecoder::decode)
    }

    #[test]
    fn pipelined_commands_decode_in_order_at_every_split() {
        let input = b"EHLO client.example\r\nMAIL FROM:<a@example.org> SIZE=100\r\nRCPT TO:<b@example.net>\r\nDATA\r\n";
        for decoded in decode_split_everywhere(input) {
            assert_eq!(decoded.len(), 4);
            assert!(matches!(&decoded[0], Ok(Request::Ehlo { host }) if host == "client.example"));
            assert!(
                matches!(&decoded[1], Ok(Request::Mail { from }) if from.address == "a@example.org" && from.size == 100)
            );
            assert!(matches!(&decoded[2], Ok(Request::Rcpt { to }) if to.address == "b@example.net"));
            assert!(matches!(&decoded[3], Ok(Request::Data)));
        }
    }

    #[test]
    fn over_long_line_is_one_error_and_the_next_line_still_parses() {
        let mut input = b"NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 2000));
        input.extend_from_slice(b"\r\nQUIT\r\n");
        for decoded in decode_split_everywhere(&input) {
            assert_eq!(decoded, vec![Err(CommandError::LineTooLong), Ok(Request::Quit)]);
        }
    }

    #[test]
    fn line_of_exactly_512_octets_is_accepted() {
        let mut line = b"NOOP ".to_vec();
        line.extend(std::iter::repeat_n(b'x', MAX_COMMAND_LINE - 7));
        line.extend_from_slice(b"\r\n");
        assert_eq!(line.len(), MAX_COMMAND_LINE);
        assert!(matches!(decode_all(&line)[..], [Ok(Request::Noop { .. })]));
        line.insert(5, b'x');
        assert_eq!(decode_all(&line), vec![Err(CommandError::LineTooLong)]);
    }

    #[test]
    fn unknown_and_malformed_commands_are_errors_not_panics() {
        let decoded = decode_all(b"FOO bar\r\nMAIL FROM:nonsense\r\nRCPT\r\n\r\n\x00\xff\r\n");
        assert_eq!(decoded[0], Err(CommandError::Unknown));
        assert!(matches!(decoded[1], Err(CommandError::Syntax(_))));
        assert!(matches!(decoded[2], Err(CommandError::Syntax(_))));
        assert_eq!(decoded.len(), 5);
        assert!(decoded[3..].iter().all(|d| d.is_err()));
    }

    #[test]
    fn null_sender_parses() {
        let decoded = decode_all(b"MAIL FROM:<>\r\n");
        assert!(matches!(&decoded[0], Ok(Request::Mail { from }) if from.address.is_empty()));
    }

    #[test]
    fn postmaster_is_told_apart_from_an_empty_path() {
        let decoded = decode_all(
            b"RCPT TO:<Postmaster>\r\nRCPT TO:<>\r\nMAIL FROM:<postmaster>\r\nMAIL FROM:<@relay.example:>\r\n",
        );
        assert!(matches!(&decoded[0], Ok(Request::Rcpt { to }) if to.address == POSTMASTER));
        assert_eq!(decoded[1], Err(CommandError::InvalidRecipient));
        assert_eq!(decoded[2], Err(CommandError::InvalidSender));
        assert_eq!(decoded[3], Err(CommandError::InvalidSender));
    }

    #[test]
    fn starttls_takes_no_arguments() {
        let decoded = decode_all(b"STARTTLS\r\nSTARTTLS  \r\nSTARTTLS now\r\n");
        assert_eq!(decoded[0], Ok(Request::StartTls));
        assert_eq!(decoded[1], Ok(Request::StartTls));
        assert!(matches!(decoded[2], Err(CommandError::Syntax(_))));
    }

    #[test]
    fn utf8_addresses_bdat_and_auth_initial_responses_parse() {
        let decoded = decode_all(
            "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nBDAT 42 LAST\r\nBDAT 7\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nAUTH login\r\nAUTH PLAIN =\r\nAUTH CRAM-MD5\r\nAUTH FOO\r\n"
                .as_bytes(),
        );
        assert!(
            matches!(&decoded[0], Ok(Request::Mail { from }) if from.address == "jörg@bücher.example" && from.flags & smtp_proto::MAIL_SMTPUTF8 != 0)
        );
        assert_eq!(decoded[1], Ok(Request::Bdat { chunk_size: 42, is_last: true }));
        assert_eq!(decoded[2], Ok(Request::Bdat { chunk_size: 7, is_last: false }));
        assert_eq!(
            decoded[3],
            Ok(Request::Auth { mechanism: smtp_proto::AUTH_PLAIN, initial_response: "AGFsaWNlAHNlY3JldA==".into() })
        );
        assert_eq!(
            decoded[4],
            Ok(Request::Auth { mechanism: smtp_proto::AUTH_LOGIN, initial_response: String::new() })
        );
        assert_eq!(decoded[5], Ok(Request::Auth { mechanism: smtp_proto::AUTH_PLAIN, initial_response: "=".into() }));
        assert!(matches!(&decoded[6], Ok(Request::Auth { mechanism, .. }) if *mechanism == smtp_proto::AUTH_CRAM_MD5));
        assert!(matches!(&decoded[7], Ok(Request::Auth { mechanism: 0, .. })));
    }

    #[test]
    fn sasl_lines_may_be_12288_octets_and_share_the_framing() {
        let mut line = vec![b'A'; MAX_SASL_LINE - 2];
        line.extend_from_slice(b"\r\n");
        let mut decoder = CommandDecoder::default();
        assert_eq!(decoder.decode_sasl_line(&line), Decode::Item { item: line.clone(), consumed: MAX_SASL_LINE });
        // One more octet is too many; the rest of that line is skipped even by the command decoder.
        let mut long = vec![b'A'; MAX_SASL_LINE];
        assert_eq!(
            decoder.decode_sasl_line(&long),
            Decode::Invalid { error: CommandError::LineTooLong, consumed: MAX_SASL_LINE }
        );
        long.truncate(3);
        long.extend_from_slice(b"\r\nQUIT\r\n");
        assert_eq!(decoder.decode(&long), Decode::Skip { consumed: 5 });
        assert_eq!(decoder.decode(&long[5..]), Decode::Item { item: Request::Quit, consumed: 6 });
    }

    #[test]
    fn sasl_lines_decode_at_every_split() {
        for decoded in mailbus_lines::decode_at_every_split(b"dXNlcg==\r\n*\r\n", CommandDecoder::decode_sasl_line) {
            assert_eq!(decoded, vec![Ok(b"dXNlcg==\r\n".to_vec()), Ok(b"*\r\n".to_vec())]);
        }
    }
}
