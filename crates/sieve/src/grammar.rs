//! The generic grammar of RFC 5228 §8.2: a command is an identifier, arguments, and either `;` or a
//! block; a test is an identifier and arguments; an argument is a string list, a number or a tag, and
//! the arguments may end in one test or a parenthesised test list. What each command means is
//! checked afterwards, in [`crate::check`].

use crate::ParseError;
use crate::lexer::{Position, Token};

#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    pub at: Position,
    pub arguments: Vec<Argument>,
    pub tests: Vec<Test>,
    /// `Some` when the command ends in a block rather than `;`.
    pub block: Option<Vec<Command>>,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub name: String,
    pub at: Position,
    pub arguments: Vec<Argument>,
    pub tests: Vec<Test>,
    pub test_list: bool,
}

#[derive(Debug, Clone)]
pub enum Argument {
    Tag(String, Position),
    Number(u64, Position),
    /// A single string is a list of one; `single` says which way it was written.
    Strings {
        values: Vec<String>,
        single: bool,
        at: Position,
    },
}

impl Argument {
    pub fn at(&self) -> Position {
        match self {
            Argument::Tag(_, at) | Argument::Number(_, at) | Argument::Strings { at, .. } => *at,
        }
    }
}

pub struct Parser {
    tokens: Vec<(Token, Position)>,
    at: usize,
    end: Position,
    max_nesting: usize,
}

impl Parser {
    pub fn new(tokens: Vec<(Token, Position)>, end: Position, max_nesting: usize) -> Self {
        Parser { tokens, at: 0, end, max_nesting }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    fn position(&self) -> Position {
        self.tokens.get(self.at).map_or(self.end, |(_, at)| *at)
    }

    fn next(&mut self) -> Option<(Token, Position)> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        let found = self.peek().map_or_else(|| "the end of the script".to_owned(), Token::describe);
        ParseError::new(self.position(), format!("expected {wanted}, found {found}"))
    }

    pub fn script(mut self) -> Result<Vec<Command>, ParseError> {
        let commands = self.commands(0)?;
        if self.peek().is_some() {
            return Err(self.unexpected("a command"));
        }
        Ok(commands)
    }

    fn commands(&mut self, depth: usize) -> Result<Vec<Command>, ParseError> {
        let mut commands = Vec::new();
        while let Some(Token::Identifier(_)) = self.peek() {
            commands.push(self.command(depth)?);
        }
        Ok(commands)
    }

    fn command(&mut self, depth: usize) -> Result<Command, ParseError> {
        let Some((Token::Identifier(name), at)) = self.next() else { unreachable!("commands() peeked") };
        let (arguments, tests, _) = self.arguments(depth)?;
        let block = match self.peek() {
            Some(Token::Semicolon) => {
                self.at += 1;
                None
            }
            Some(Token::LeftBrace) => {
                if depth + 1 > self.max_nesting {
                    return Err(ParseError::new(self.position(), "blocks are nested too deeply"));
                }
                self.at += 1;
                let block = self.commands(depth + 1)?;
                match self.peek() {
                    Some(Token::RightBrace) => self.at += 1,
                    _ => return Err(self.unexpected("a command or '}'")),
                }
                Some(block)
            }
            _ => return Err(self.unexpected("';' or '{'")),
        };
        Ok(Command { name, at, arguments, tests, block })
    }

    fn arguments(&mut self, depth: usize) -> Result<(Vec<Argument>, Vec<Test>, bool), ParseError> {
        let mut arguments = Vec::new();
        loop {
            let at = self.position();
            match self.peek() {
                Some(Token::Tag(tag)) => {
                    arguments.push(Argument::Tag(tag.clone(), at));
                    self.at += 1;
                }
                Some(Token::Number(n)) => {
                    arguments.push(Argument::Number(*n, at));
                    self.at += 1;
                }
                Some(Token::String(s)) => {
                    arguments.push(Argument::Strings { values: vec![s.clone()], single: true, at });
                    self.at += 1;
                }
                Some(Token::LeftBracket) => {
                    self.at += 1;
                    arguments.push(Argument::Strings { values: self.string_list()?, single: false, at });
                }
                _ => break,
            }
        }
        let (tests, list) = match self.peek() {
            Some(Token::Identifier(_)) => (vec![self.test(depth + 1)?], false),
            Some(Token::LeftParen) => {
                self.at += 1;
                let mut tests = vec![self.test(depth + 1)?];
                loop {
                    match self.next() {
                        Some((Token::Comma, _)) => tests.push(self.test(depth + 1)?),
                        Some((Token::RightParen, _)) => break,
                        _ => {
                            self.at -= 1;
                            return Err(self.unexpected("',' or ')' in a test list"));
                        }
                    }
                }
                (tests, true)
            }
            _ => (Vec::new(), false),
        };
        Ok((arguments, tests, list))
    }

    fn string_list(&mut self) -> Result<Vec<String>, ParseError> {
        let mut values = Vec::new();
        loop {
            match self.next() {
                Some((Token::String(s), _)) => values.push(s),
                _ => {
                    self.at -= 1;
                    return Err(self.unexpected("a string in a string list"));
                }
            }
            match self.next() {
                Some((Token::Comma, _)) => {}
                Some((Token::RightBracket, _)) => return Ok(values),
                _ => {
                    self.at -= 1;
                    return Err(self.unexpected("',' or ']' in a string list"));
                }
            }
        }
    }

    fn test(&mut self, depth: usize) -> Result<Test, ParseError> {
        if depth > self.max_nesting {
            return Err(ParseError::new(self.position(), "tests are nested too deeply"));
        }
        match self.next() {
            Some((Token::Identifier(name), at)) => {
                let (arguments, tests, test_list) = self.arguments(depth)?;
                Ok(Test { name, at, arguments, tests, test_list })
            }
            _ => {
                self.at -= 1;
                Err(self.unexpected("a test"))
            }
        }
    }
}
