//! POP3 responses (RFC 1939 §3): a status indicator and text, and for multi-line responses the
//! dot-stuffed lines and the terminating "."; also the "+ " challenge of an AUTH exchange (RFC 5034 §4).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Ok(String),
    Err(String),
    /// "+OK text", then the lines, then "." — the lines are NOT dot-stuffed by the caller; `to_bytes`
    /// stuffs them.
    MultiLine {
        first: String,
        lines: Vec<String>,
    },
    /// RFC 5034 §4: a SASL challenge, "+ " and the base64 text (empty for PLAIN). The space is sent even
    /// when the text is empty.
    Continue(String),
}

impl Response {
    pub fn ok(text: impl Into<String>) -> Self {
        Response::Ok(text.into())
    }

    pub fn err(text: impl Into<String>) -> Self {
        Response::Err(text.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Response::Err(_))
    }

    /// The wire form: `+OK text` or `-ERR text` (the bare indicator when the text is empty), each line
    /// ending in CRLF.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Ok(text) => status_line(&mut out, "+OK", text),
            Response::Err(text) => status_line(&mut out, "-ERR", text),
            Response::MultiLine { first, lines } => {
                status_line(&mut out, "+OK", first);
                for line in lines {
                    // RFC 1939 §3: a line that starts with the termination octet gets one more.
                    if line.starts_with('.') {
                        out.push(b'.');
                    }
                    push_line(&mut out, line);
                }
                out.extend_from_slice(b".\r\n");
            }
            Response::Continue(challenge) => {
                out.extend_from_slice(b"+ ");
                push_line(&mut out, challenge);
            }
        }
        out
    }
}

fn status_line(out: &mut Vec<u8>, indicator: &str, text: &str) {
    out.extend_from_slice(indicator.as_bytes());
    if !text.is_empty() {
        out.push(b' ');
    }
    push_line(out, text);
}

/// Writes one line and its CRLF. A CR or LF inside the text would end the line early and let the rest
/// pass for a response of its own, so they become spaces.
fn push_line(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(String::from_utf8_lossy(&self.to_bytes()).trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_responses() {
        assert_eq!(Response::ok("2 320").to_bytes(), b"+OK 2 320\r\n");
        assert_eq!(Response::err("no such message").to_bytes(), b"-ERR no such message\r\n");
        assert_eq!(Response::ok("").to_bytes(), b"+OK\r\n");
        assert_eq!(Response::err("").to_bytes(), b"-ERR\r\n");
        assert!(Response::err("x").is_error());
        assert!(!Response::ok("x").is_error());
    }

    #[test]
    fn sasl_challenges_keep_their_space() {
        assert_eq!(Response::Continue(String::new()).to_bytes(), b"+ \r\n");
        assert_eq!(Response::Continue("PDEyMzQ+".into()).to_bytes(), b"+ PDEyMzQ+\r\n");
        assert!(!Response::Continue(String::new()).is_error());
    }

    #[test]
    fn multi_line_responses_are_stuffed_and_terminated() {
        let response = Response::MultiLine {
            first: "2 messages".into(),
            lines: vec!["1 120".into(), ".".into(), "..x".into(), "".into()],
        };
        assert_eq!(response.to_bytes(), b"+OK 2 messages\r\n1 120\r\n..\r\n...x\r\n\r\n.\r\n");
        assert!(!response.is_error());
        let empty = Response::MultiLine { first: String::new(), lines: Vec::new() };
        assert_eq!(empty.to_bytes(), b"+OK\r\n.\r\n");
    }

    #[test]
    fn line_breaks_inside_text_cannot_forge_a_response() {
        assert_eq!(Response::err("a\r\n+OK b").to_bytes(), b"-ERR a  +OK b\r\n");
        let response = Response::MultiLine { first: "x\ny".into(), lines: vec!["1\r\n.".into()] };
        assert_eq!(response.to_bytes(), b"+OK x y\r\n1  .\r\n.\r\n");
    }

    #[test]
    fn display_is_the_wire_form_without_the_last_crlf() {
        assert_eq!(Response::ok("hi").to_string(), "+OK hi");
        let response = Response::MultiLine { first: "list".into(), lines: vec!["1 2".into()] };
        assert_eq!(response.to_string(), "+OK list\r\n1 2\r\n.");
    }
}
