//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034, RFC 3463) on every line.

use std::fmt;

/// An RFC 3463 enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The greeting (220) and EHLO's keyword lines carry none; every other reply does.
    pub enhanced: Option<Enhanced>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: Enhanced, text: impl Into<String>) -> Self {
        Reply { code, enhanced: Some(enhanced), lines: vec![text.into()] }
    }

    pub fn plain(code: u16, lines: Vec<String>) -> Self {
        Reply { code, enhanced: None, lines }
    }

    /// 4yz and 5yz replies count as errors.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// The wire form: `250-first`, …, `250 last`, each line ending in CRLF.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let text = match self.enhanced {
                Some(enhanced) => format!("{}{sep}{enhanced} {line}\r\n", self.code),
                None => format!("{}{sep}{line}\r\n", self.code),
            };
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    pub fn ok(text: impl Into<String>) -> Self {
        Reply::new(250, Enhanced(2, 0, 0), text)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(String::from_utf8_lossy(&self.to_bytes()).trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_replies_use_hyphens_until_the_last_line() {
        let reply = Reply::plain(250, vec!["mx.example greets you".into(), "PIPELINING".into(), "SIZE 100".into()]);
        assert_eq!(reply.to_bytes(), b"250-mx.example greets you\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
        let reply = Reply::new(550, Enhanced(5, 1, 1), "no such user");
        assert_eq!(reply.to_bytes(), b"550 5.1.1 no such user\r\n");
    }
}
