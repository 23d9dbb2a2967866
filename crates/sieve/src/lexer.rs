//! Tokens of RFC 5228 §8.1: identifiers, tags, numbers with their K/M/G quantifiers, quoted and
//! multi-line strings, and the punctuation; comments are skipped here.

use crate::ParseError;

/// Where a token starts: 1-based line and column (in characters), for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Identifier(String),
    /// A `:tag`, stored without the colon and in lower case (tags are case-insensitive).
    Tag(String),
    Number(u64),
    String(String),
    LeftBracket,
    RightBracket,
    LeftParen,
    RightParen,
    LeftBrace,
    RightBrace,
    Comma,
    Semicolon,
}

impl Token {
    pub fn describe(&self) -> String {
        match self {
            Token::Identifier(name) => format!("identifier '{name}'"),
            Token::Tag(tag) => format!("tag ':{tag}'"),
            Token::Number(n) => format!("number {n}"),
            Token::String(_) => "a string".to_owned(),
            Token::LeftBracket => "'['".to_owned(),
            Token::RightBracket => "']'".to_owned(),
            Token::LeftParen => "'('".to_owned(),
            Token::RightParen => "')'".to_owned(),
            Token::LeftBrace => "'{'".to_owned(),
            Token::RightBrace => "'}'".to_owned(),
            Token::Comma => "','".to_owned(),
            Token::Semicolon => "';'".to_owned(),
        }
    }
}

pub fn tokenize(source: &str) -> Result<Vec<(Token, Position)>, ParseError> {
    let mut lexer = Lexer { chars: source.chars().collect(), at: 0, line: 1, column: 1 };
    let mut tokens = Vec::new();
    while let Some(token) = lexer.next_token()? {
        tokens.push(token);
    }
    Ok(tokens)
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    line: u32,
    column: u32,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn position(&self) -> Position {
        Position { line: self.line, column: self.column }
    }

    fn error(&self, at: Position, message: impl Into<String>) -> ParseError {
        ParseError::new(at, message)
    }

    fn skip_blanks_and_comments(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.bump();
                }
                Some('#') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                Some('/') if self.peek_at(1) == Some('*') => {
                    let start = self.position();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                            None => return Err(self.error(start, "unterminated comment")),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Option<(Token, Position)>, ParseError> {
        self.skip_blanks_and_comments()?;
        let at = self.position();
        let Some(c) = self.peek() else { return Ok(None) };
        let token = match c {
            '[' => self.punct(Token::LeftBracket),
            ']' => self.punct(Token::RightBracket),
            '(' => self.punct(Token::LeftParen),
            ')' => self.punct(Token::RightParen),
            '{' => self.punct(Token::LeftBrace),
            '}' => self.punct(Token::RightBrace),
            ',' => self.punct(Token::Comma),
            ';' => self.punct(Token::Semicolon),
            '"' => Token::String(self.quoted(at)?),
            ':' => {
                self.bump();
                if !self.peek().is_some_and(is_identifier_start) {
                    return Err(self.error(at, "a ':' must start a tag such as ':is'"));
                }
                Token::Tag(self.identifier().to_ascii_lowercase())
            }
            '0'..='9' => Token::Number(self.number(at)?),
            c if is_identifier_start(c) => {
                let word = self.identifier();
                if word.eq_ignore_ascii_case("text") && self.peek() == Some(':') {
                    self.bump();
                    Token::String(self.multiline(at)?)
                } else {
                    Token::Identifier(word.to_ascii_lowercase())
                }
            }
            other => return Err(self.error(at, format!("unexpected character '{}'", other.escape_default()))),
        };
        Ok(Some((token, at)))
    }

    fn punct(&mut self, token: Token) -> Token {
        self.bump();
        token
    }

    fn identifier(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek().filter(|&c| c.is_ascii_alphanumeric() || c == '_') {
            word.push(c);
            self.bump();
        }
        word
    }

    // RFC 5228 §2.4.1: a number may end in K, M or G (2^10, 2^20, 2^30).
    fn number(&mut self, at: Position) -> Result<u64, ParseError> {
        let mut value: u64 = 0;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            self.bump();
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d)))
                .ok_or_else(|| self.error(at, "number too large"))?;
        }
        let shift = match self.peek().map(|c| c.to_ascii_uppercase()) {
            Some('K') => 10,
            Some('M') => 20,
            Some('G') => 30,
            _ => 0,
        };
        if shift > 0 {
            self.bump();
            value = value.checked_mul(1 << shift).ok_or_else(|| self.error(at, "number too large"))?;
        }
        if self.peek().is_some_and(is_identifier_start) {
            return Err(self.error(at, "a number must not run into a word"));
        }
        Ok(value)
    }

    // RFC 5228 §2.4.2: only \\ and \" are defined; any other escaped character stands for itself.
    fn quoted(&mut self, at: Position) -> Result<String, ParseError> {
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(normalise_line_ends(text)),
                Some('\\') => match self.bump() {
                    Some(c) => text.push(c),
                    None => return Err(self.error(at, "unterminated string")),
                },
                Some(c) => text.push(c),
                None => return Err(self.error(at, "unterminated string")),
            }
        }
    }

    // RFC 5228 §2.4.2: `text:` then blanks or a comment to the end of the line, then lines up to one
    // holding a single "."; a line starting with ".." loses one dot.
    fn multiline(&mut self, at: Position) -> Result<String, ParseError> {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
        if self.peek() == Some('#') {
            while self.peek().is_some_and(|c| c != '\n') {
                self.bump();
            }
        }
        if self.peek() == Some('\r') {
            self.bump();
        }
        if self.bump() != Some('\n') {
            return Err(self.error(at, "'text:' must be followed by the end of the line"));
        }
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let mut ended = false;
            while let Some(c) = self.bump() {
                if c == '\n' {
                    ended = true;
                    break;
                }
                line.push(c);
            }
            if line.ends_with('\r') {
                line.pop();
            }
            if line == "." {
                return Ok(text);
            }
            if !ended {
                return Err(self.error(at, "multi-line string not terminated by a line holding '.'"));
            }
            let line = line.strip_prefix('.').filter(|rest| rest.starts_with('.')).unwrap_or(&line);
            text.push_str(line);
            text.push_str("\r\n");
        }
    }
}

fn is_identifier_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

/// Strings reach messages and replies as CRLF-terminated lines, whatever the script file used.
fn normalise_line_ends(text: String) -> String {
    if !text.contains('\n') {
        return text;
    }
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(source: &str) -> Vec<Token> {
        tokenize(source).unwrap().into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn numbers_take_quantifiers() {
        assert_eq!(
            tokens("1K 2M 3g 7"),
            [Token::Number(1024), Token::Number(2 << 20), Token::Number(3 << 30), Token::Number(7)]
        );
        assert!(tokenize("99999999999999999999").is_err());
        assert!(tokenize("18446744073709551615G").is_err());
    }

    #[test]
    fn strings_unescape_and_multiline_unstuffs_dots() {
        assert_eq!(tokens(r#""a\"b\\c\d""#), [Token::String("a\"b\\cd".into())]);
        assert_eq!(
            tokens("text: # note\r\nline\r\n..dot\r\n.\r\n;"),
            [Token::String("line\r\n.dot\r\n".into()), Token::Semicolon]
        );
    }

    #[test]
    fn comments_are_skipped_and_positions_count_lines() {
        let t = tokenize("# hash\n/* a\nb */ keep;").unwrap();
        assert_eq!(t[0], (Token::Identifier("keep".into()), Position { line: 3, column: 6 }));
    }

    #[test]
    fn errors_carry_the_position() {
        let e = tokenize("keep;\n  \"open").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        let e = tokenize("/* never closed").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
    }
}
