//! Command lines: framing with the RFC 5321 length limit, then parsing by `smtp-proto`.

use std::borrow::Cow;

use smtp_proto::Request;

use mailbus_lines::{Decode, LineFramer, LineTooLong};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, CRLF included.
pub const MAX_COMMAND_LINE: usize = 512;

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
}

fn parse_line(line: &[u8]) -> Result<Command, CommandError> {
    let mut iter = line.iter();
    match Request::parse(&mut iter) {
        Ok(request) => Ok(own(request)),
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
}
