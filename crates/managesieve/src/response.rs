//! Responses (RFC 5804 §1.2, §4): zero or more data lines, then `OK`, `NO` or `BYE` with an optional
//! response code and human-readable string; or, during AUTHENTICATE, a lone challenge string.

/// RFC 5804 §1.3 response codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    AuthTooWeak,
    EncryptNeeded,
    Quota,
    QuotaMaxScripts,
    QuotaMaxSize,
    TransitionNeeded,
    TryLater,
    Active,
    NonExistent,
    AlreadyExists,
    Tag(String),
    Warnings,
}

impl Code {
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'(');
        out.extend_from_slice(match self {
            Code::AuthTooWeak => b"AUTH-TOO-WEAK",
            Code::EncryptNeeded => b"ENCRYPT-NEEDED",
            Code::Quota => b"QUOTA",
            Code::QuotaMaxScripts => b"QUOTA/MAXSCRIPTS",
            Code::QuotaMaxSize => b"QUOTA/MAXSIZE",
            Code::TransitionNeeded => b"TRANSITION-NEEDED",
            Code::TryLater => b"TRYLATER",
            Code::Active => b"ACTIVE",
            Code::NonExistent => b"NONEXISTENT",
            Code::AlreadyExists => b"ALREADYEXISTS",
            Code::Warnings => b"WARNINGS",
            Code::Tag(tag) => {
                out.extend_from_slice(b"TAG ");
                write_string(out, tag.as_bytes());
                out.push(b')');
                return;
            }
        });
        out.push(b')');
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bye,
}

/// A line before the status: a capability, a script in LISTSCRIPTS, or GETSCRIPT's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// §1.7: `"NAME"` or `"NAME" "value"`.
    Capability { name: &'static str, value: Option<String> },
    /// §2.7: `"name"` or `"name" ACTIVE`.
    Script { name: String, active: bool },
    /// §2.9: the script as a literal.
    Content(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Done {
        data: Vec<Data>,
        status: Status,
        code: Option<Code>,
        text: String,
    },
    /// §2.1: a server challenge in the AUTHENTICATE exchange, a string on a line of its own (`""` for
    /// PLAIN's empty one).
    Challenge(Vec<u8>),
}

impl Response {
    pub fn ok(text: impl Into<String>) -> Response {
        Response::status(Status::Ok, None, text)
    }

    pub fn no(text: impl Into<String>) -> Response {
        Response::status(Status::No, None, text)
    }

    pub fn bye(text: impl Into<String>) -> Response {
        Response::status(Status::Bye, None, text)
    }

    pub fn status(status: Status, code: Option<Code>, text: impl Into<String>) -> Response {
        Response::Done { data: Vec::new(), status, code, text: text.into() }
    }

    pub fn with_data(data: Vec<Data>, text: impl Into<String>) -> Response {
        Response::Done { data, status: Status::Ok, code: None, text: text.into() }
    }

    /// The status, `None` for a challenge.
    pub fn status_of(&self) -> Option<Status> {
        match self {
            Response::Done { status, .. } => Some(*status),
            Response::Challenge(_) => None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Challenge(challenge) => {
                write_string(&mut out, challenge);
                out.extend_from_slice(b"\r\n");
            }
            Response::Done { data, status, code, text } => {
                for line in data {
                    write_data(&mut out, line);
                }
                out.extend_from_slice(match status {
                    Status::Ok => b"OK",
                    Status::No => b"NO",
                    Status::Bye => b"BYE",
                });
                if let Some(code) = code {
                    out.push(b' ');
                    code.write(&mut out);
                }
                if !text.is_empty() {
                    out.push(b' ');
                    write_string(&mut out, text.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }
}

fn write_data(out: &mut Vec<u8>, data: &Data) {
    match data {
        Data::Capability { name, value } => {
            write_string(out, name.as_bytes());
            if let Some(value) = value {
                out.push(b' ');
                write_string(out, value.as_bytes());
            }
        }
        Data::Script { name, active } => {
            write_string(out, name.as_bytes());
            if *active {
                out.extend_from_slice(b" ACTIVE");
            }
        }
        Data::Content(script) => write_literal(out, script.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 5804 §4: a quoted string when it can be one (at most 1024 octets, no CR, LF or NUL), a literal
/// `{n}` otherwise, so any text, a multi-line parse error included, goes out intact.
pub fn write_string(out: &mut Vec<u8>, text: &[u8]) {
    if text.len() > 1024 || text.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
        write_literal(out, text);
        return;
    }
    out.push(b'"');
    for &byte in text {
        if matches!(byte, b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

fn write_literal(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", text.len()).as_bytes());
    out.extend_from_slice(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: &Response) -> String {
        String::from_utf8(response.to_bytes()).unwrap()
    }

    #[test]
    fn statuses_codes_and_strings() {
        assert_eq!(text(&Response::ok("")), "OK\r\n");
        assert_eq!(text(&Response::no("say \"hi\" \\ bye")), "NO \"say \\\"hi\\\" \\\\ bye\"\r\n");
        assert_eq!(
            text(&Response::status(Status::No, Some(Code::QuotaMaxSize), "too big")),
            "NO (QUOTA/MAXSIZE) \"too big\"\r\n"
        );
        assert_eq!(
            text(&Response::status(Status::Ok, Some(Code::Tag("a\"b".into())), "Done")),
            "OK (TAG \"a\\\"b\") \"Done\"\r\n"
        );
        assert_eq!(text(&Response::no("line 1\r\nline 2")), "NO {14}\r\nline 1\r\nline 2\r\n");
        assert_eq!(text(&Response::Challenge(Vec::new())), "\"\"\r\n");
    }

    #[test]
    fn data_lines() {
        let response = Response::with_data(
            vec![
                Data::Capability { name: "VERSION", value: Some("1.0".into()) },
                Data::Capability { name: "UNAUTHENTICATE", value: None },
                Data::Script { name: "a".into(), active: true },
                Data::Script { name: "b".into(), active: false },
                Data::Content("keep;\r\n".into()),
            ],
            "",
        );
        assert_eq!(
            text(&response),
            "\"VERSION\" \"1.0\"\r\n\"UNAUTHENTICATE\"\r\n\"a\" ACTIVE\r\n\"b\"\r\n{7}\r\nkeep;\r\n\r\nOK\r\n"
        );
    }
}
