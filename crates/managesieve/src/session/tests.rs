//! Transcripts per RFC 5804 section: client bytes go through the decoder and the session, a fake script
//! store (which checks scripts with the real Sieve parser) answers the requests, and the server's bytes
//! are compared with the RFC's `S:` lines. Every transcript is also fed split at every position.

use std::collections::BTreeMap;

use base64::Engine;

use super::*;
use crate::command::{CommandDecoder, MAX_LITERAL_BEFORE_LOGIN};

/// The account's scripts, with the quota of the fake: 3 scripts, 100 octets each.
#[derive(Default)]
struct Store {
    scripts: BTreeMap<String, String>,
    active: Option<String>,
}

impl Store {
    fn list(&self) -> Answer {
        Answer::Scripts(
            self.scripts
                .keys()
                .map(|name| ScriptEntry { name: name.clone(), active: self.active.as_ref() == Some(name) })
                .collect(),
        )
    }

    fn space(&self, name: &str, size: u64) -> Result<Answer, Failure> {
        if size > 100 {
            return Err(Failure::MaxSize);
        }
        if !self.scripts.contains_key(name) && self.scripts.len() >= 3 {
            return Err(Failure::MaxScripts);
        }
        Ok(Answer::Done { warnings: Vec::new() })
    }

    fn call(&mut self, request: Request) -> Result<Answer, Failure> {
        let check = |content: &str| {
            mailbus_sieve::parse(content, &mailbus_sieve::Limits::default())
                .map(|_| ())
                .map_err(|error| Failure::Invalid(error.to_string()))
        };
        match request {
            Request::HaveSpace { name, size } => self.space(&name, size),
            Request::PutScript { name, content } => {
                self.space(&name, content.len() as u64)?;
                check(&content)?;
                let warnings = if content.contains("discard") { vec!["discard drops mail".into()] } else { vec![] };
                self.scripts.insert(name, content);
                Ok(Answer::Done { warnings })
            }
            Request::CheckScript { content } => check(&content).map(|()| Answer::Done { warnings: Vec::new() }),
            Request::ListScripts => Ok(self.list()),
            Request::SetActive { name: None } => {
                self.active = None;
                Ok(Answer::Done { warnings: Vec::new() })
            }
            Request::SetActive { name: Some(name) } => {
                if !self.scripts.contains_key(&name) {
                    return Err(Failure::NonExistent);
                }
                self.active = Some(name);
                Ok(Answer::Done { warnings: Vec::new() })
            }
            Request::GetScript { name } => {
                self.scripts.get(&name).cloned().map(Answer::Script).ok_or(Failure::NonExistent)
            }
            Request::DeleteScript { name } => {
                if self.active.as_ref() == Some(&name) {
                    return Err(Failure::Active);
                }
                self.scripts.remove(&name).map(|_| Answer::Done { warnings: Vec::new() }).ok_or(Failure::NonExistent)
            }
            Request::RenameScript { old_name, new_name } => {
                if self.scripts.contains_key(&new_name) {
                    return Err(Failure::AlreadyExists);
                }
                let content = self.scripts.remove(&old_name).ok_or(Failure::NonExistent)?;
                if self.active.as_ref() == Some(&old_name) {
                    self.active = Some(new_name.clone());
                }
                self.scripts.insert(new_name, content);
                Ok(Answer::Done { warnings: Vec::new() })
            }
        }
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        hostname: "mx.example.org".into(),
        starttls_available: true,
        plaintext_allowed: false,
        max_auth_failures: 3,
        max_redirects: 4,
    }
}

/// What the connection task does, without I/O: only "alice" with "secret" logs in.
struct Harness {
    session: Session,
    decoder: CommandDecoder,
    store: Store,
    out: Vec<u8>,
    buf: Vec<u8>,
    closed: bool,
}

impl Harness {
    fn new(config: SessionConfig, tls: bool) -> Harness {
        let session = Session::new(config, tls);
        let out = session.greeting().to_bytes();
        Harness {
            session,
            decoder: CommandDecoder::new(MAX_LITERAL_BEFORE_LOGIN),
            store: Store::default(),
            out,
            buf: Vec::new(),
            closed: false,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        while !self.closed {
            let Some(line) = mailbus_lines::next_item(&mut self.buf, |input| self.decoder.decode(input)) else { break };
            let mut action = self.session.handle(line);
            loop {
                action = match action {
                    Action::Reply(response) => {
                        self.out.extend(response.to_bytes());
                        break;
                    }
                    Action::Close(response) => {
                        self.out.extend(response.to_bytes());
                        self.closed = true;
                        break;
                    }
                    Action::StartTls(response) => {
                        self.out.extend(response.to_bytes());
                        self.out.extend(b"<TLS>\r\n");
                        self.buf.clear();
                        self.decoder = CommandDecoder::new(MAX_LITERAL_BEFORE_LOGIN);
                        self.out.extend(self.session.tls_started().to_bytes());
                        break;
                    }
                    Action::Authenticate { user, password } => {
                        let ok = user == "alice" && password.expose() == "secret";
                        self.session.authenticated(if ok { AuthOutcome::Ok } else { AuthOutcome::Invalid })
                    }
                    Action::Call(request) => {
                        let result = self.store.call(request);
                        self.out.extend(self.session.answered(result).to_bytes());
                        break;
                    }
                };
            }
            let max = if self.session.is_authenticated() { 64 * 1024 } else { MAX_LITERAL_BEFORE_LOGIN };
            self.decoder.set_max_literal(max);
        }
    }
}

/// Runs a transcript whole and split at every position; returns what the server wrote after the greeting.
fn run_with(config: SessionConfig, tls: bool, client: &str) -> String {
    let whole = {
        let mut harness = Harness::new(config.clone(), tls);
        let greeting = harness.out.len();
        harness.feed(client.as_bytes());
        String::from_utf8(harness.out[greeting..].to_vec()).unwrap()
    };
    for split in 0..=client.len() {
        let mut harness = Harness::new(config.clone(), tls);
        let greeting = harness.out.len();
        harness.feed(&client.as_bytes()[..split]);
        harness.feed(&client.as_bytes()[split..]);
        assert_eq!(String::from_utf8_lossy(&harness.out[greeting..]), whole, "split at {split}");
    }
    whole
}

fn run(client: &str) -> String {
    run_with(config(), true, client)
}

fn plain(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

fn login() -> String {
    format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", plain("alice", "secret"))
}

const SIEVE: &str = "fileinto envelope reject ereject imap4flags copy body variables relational subaddress date \
index vacation mailbox encoded-character comparator-i;octet comparator-i;ascii-casemap comparator-i;ascii-numeric";

#[test]
fn section_1_7_greeting_lists_capabilities() {
    let harness = Harness::new(config(), false);
    let expected = format!(
        "\"IMPLEMENTATION\" \"mailbus\"\r\n\"SASL\" \"\"\r\n\"SIEVE\" \"{SIEVE}\"\r\n\"STARTTLS\"\r\n\
         \"MAXREDIRECTS\" \"4\"\r\n\"UNAUTHENTICATE\"\r\n\"VERSION\" \"1.0\"\r\nOK \"mx.example.org ManageSieve ready\"\r\n"
    );
    assert_eq!(String::from_utf8(harness.out).unwrap(), expected);
    // With TLS (or where plaintext is allowed) PLAIN is offered, and STARTTLS is not offered twice.
    let harness = Harness::new(config(), true);
    let greeting = String::from_utf8(harness.out).unwrap();
    assert!(greeting.contains("\"SASL\" \"PLAIN\"\r\n"), "{greeting}");
    assert!(!greeting.contains("STARTTLS"), "{greeting}");
}

#[test]
fn section_2_2_starttls_reissues_capabilities_and_forgets_pipelined_input() {
    // The AUTHENTICATE pipelined behind STARTTLS arrives with it and is dropped unread.
    let mut harness = Harness::new(config(), false);
    let greeting = harness.out.len();
    harness.feed(format!("STARTTLS\r\n{}", login()).as_bytes());
    let out = String::from_utf8(harness.out[greeting..].to_vec()).unwrap();
    let expected = format!(
        "OK \"Begin TLS negotiation now\"\r\n<TLS>\r\n\"IMPLEMENTATION\" \"mailbus\"\r\n\"SASL\" \"PLAIN\"\r\n\
         \"SIEVE\" \"{SIEVE}\"\r\n\"MAXREDIRECTS\" \"4\"\r\n\"UNAUTHENTICATE\"\r\n\"VERSION\" \"1.0\"\r\n\
         OK \"TLS negotiation successful\"\r\n"
    );
    assert_eq!(out, expected);
    assert_eq!(run("STARTTLS\r\n"), "NO \"TLS is already active\"\r\n");
    let without_certificate = SessionConfig { starttls_available: false, ..config() };
    assert_eq!(run_with(without_certificate, false, "STARTTLS\r\n"), "NO \"TLS is not available\"\r\n");
}

#[test]
fn section_2_1_authenticate_plain_with_initial_response_and_continuation() {
    assert_eq!(run(&format!("{}LISTSCRIPTS\r\n", login())), "OK \"Logged in\"\r\nOK \"Listscripts completed\"\r\n");
    // The empty challenge, then the response as a quoted string or a literal.
    let client = format!("AUTHENTICATE \"PLAIN\"\r\n\"{}\"\r\n", plain("alice", "secret"));
    assert_eq!(run(&client), "\"\"\r\nOK \"Logged in\"\r\n");
    let response = plain("alice", "secret");
    let client = format!("Authenticate \"plain\"\r\n{{{}+}}\r\n{response}\r\n", response.len());
    assert_eq!(run(&client), "\"\"\r\nOK \"Logged in\"\r\n");
    // "*" cancels; the session is still not authenticated.
    assert_eq!(
        run("AUTHENTICATE \"PLAIN\"\r\n\"*\"\r\nLISTSCRIPTS\r\n"),
        "\"\"\r\nNO \"authentication cancelled\"\r\nNO \"authenticate first\"\r\n"
    );
    assert_eq!(run("AUTHENTICATE \"GSSAPI\"\r\n"), "NO \"unsupported authentication mechanism\"\r\n");
    assert_eq!(run("AUTHENTICATE \"PLAIN\" \"!!!\"\r\n"), "NO \"invalid base64\"\r\n");
    assert_eq!(run(&format!("{}{}", login(), login())), "OK \"Logged in\"\r\nNO \"already authenticated\"\r\n");
}

#[test]
fn section_2_1_failed_logins_end_in_bye() {
    let bad = format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", plain("alice", "wrong"));
    assert_eq!(
        run(&format!("{bad}{bad}{bad}NOOP\r\n")),
        "NO \"authentication failed\"\r\nNO \"authentication failed\"\r\nBYE \"too many authentication failures\"\r\n"
    );
}

#[test]
fn plaintext_login_is_refused_without_tls_unless_allowed() {
    assert_eq!(
        run_with(config(), false, &login()),
        "NO (ENCRYPT-NEEDED) \"plaintext authentication disallowed without TLS\"\r\n"
    );
    let allowed = SessionConfig { plaintext_allowed: true, ..config() };
    assert_eq!(run_with(allowed, false, &login()), "OK \"Logged in\"\r\n");
}

#[test]
fn login_outcomes_the_connection_reports() {
    for (outcome, expected) in [
        (AuthOutcome::Unavailable, "NO (TRYLATER) \"login temporarily unavailable, try again later\"\r\n"),
        (AuthOutcome::Throttled, "NO (TRYLATER) \"too many failed logins from your address, try again later\"\r\n"),
    ] {
        let mut session = Session::new(config(), true);
        let Ok(line) = Command::parse(Line {
            tokens: vec![
                crate::command::Token::Atom("AUTHENTICATE".into()),
                crate::command::Token::String(b"PLAIN".to_vec()),
            ],
        }) else {
            panic!("parse")
        };
        let Command::Authenticate { mechanism, .. } = line else { panic!("authenticate") };
        let action = session.authenticate(&mechanism, Some(Secret::new(plain("alice", "secret"))));
        session.follow(&action);
        assert!(matches!(action, Action::Authenticate { .. }));
        let Action::Reply(response) = session.authenticated(outcome) else { panic!("reply") };
        assert_eq!(String::from_utf8(response.to_bytes()).unwrap(), expected);
        assert!(!session.is_authenticated());
    }
}

#[test]
fn section_2_3_havespace() {
    let out = run(&format!("{}HAVESPACE \"a\" 50\r\nHAVESPACE \"a\" 500\r\n", login()));
    assert_eq!(
        out,
        "OK \"Logged in\"\r\nOK \"Putscript would succeed\"\r\nNO (QUOTA/MAXSIZE) \"script is too large\"\r\n"
    );
}

#[test]
fn section_2_6_putscript_stores_and_returns_the_parse_error() {
    let client = format!(
        "{}PUTSCRIPT \"good\" {{6+}}\r\nkeep;\n\r\nPUTSCRIPT \"bad\" {{7}}\r\nfrob;\r\n\r\n\
         PUTSCRIPT \"warn\" \"discard;\"\r\nPUTSCRIPT \"x\" \"keep;\"\r\nPUTSCRIPT \"y\" \"keep;\"\r\nLISTSCRIPTS\r\n",
        login()
    );
    let out = run(&client);
    // The parser's wording is its own; what counts is that its line and column reach the client.
    let (head, tail) = out.split_once("NO \"line 1, column ").expect(&out);
    assert_eq!(head, "OK \"Logged in\"\r\nOK \"Putscript completed\"\r\n");
    assert!(
        tail.contains(
            "OK (WARNINGS) \"discard drops mail\"\r\nOK \"Putscript completed\"\r\n\
             NO (QUOTA/MAXSCRIPTS) \"too many scripts\"\r\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("\"good\"\r\n\"warn\"\r\n\"x\"\r\nOK \"Listscripts completed\"\r\n"), "{out}");
}

#[test]
fn section_2_6_a_script_over_the_literal_limit_is_skipped_with_quota_maxsize() {
    let big = "#".repeat(70 * 1024);
    let client = format!("{}PUTSCRIPT \"big\" {{{}+}}\r\n{big}\r\nNOOP\r\n", login(), big.len());
    let mut harness = Harness::new(config(), true);
    harness.feed(client.as_bytes());
    let out = String::from_utf8(harness.out).unwrap();
    assert!(
        out.ends_with(
            "OK \"Logged in\"\r\nNO (QUOTA/MAXSIZE) \"script is larger than the server allows\"\r\nOK \"Done\"\r\n"
        ),
        "{out}"
    );
    // Before login the same literal ends the session.
    let mut harness = Harness::new(config(), true);
    harness.feed(format!("AUTHENTICATE \"PLAIN\" {{{}+}}\r\n{big}\r\n", big.len()).as_bytes());
    assert!(String::from_utf8(harness.out).unwrap().ends_with("BYE \"literal too large before login\"\r\n"));
}

#[test]
fn section_2_7_to_2_10_list_activate_get_delete() {
    let client = format!(
        "{}PUTSCRIPT \"a\" \"keep;\"\r\nPUTSCRIPT \"b\" \"stop;\"\r\nSETACTIVE \"a\"\r\nLISTSCRIPTS\r\n\
         GETSCRIPT \"b\"\r\nDELETESCRIPT \"a\"\r\nSETACTIVE \"\"\r\nDELETESCRIPT \"a\"\r\n\
         GETSCRIPT \"a\"\r\nSETACTIVE \"zz\"\r\nLISTSCRIPTS\r\n",
        login()
    );
    assert_eq!(
        run(&client),
        "OK \"Logged in\"\r\nOK \"Putscript completed\"\r\nOK \"Putscript completed\"\r\nOK \"Setactive completed\"\r\n\
         \"a\" ACTIVE\r\n\"b\"\r\nOK \"Listscripts completed\"\r\n\
         {5}\r\nstop;\r\nOK \"Getscript completed\"\r\n\
         NO (ACTIVE) \"the active script cannot be deleted\"\r\nOK \"Setactive completed\"\r\nOK \"Deletescript completed\"\r\n\
         NO (NONEXISTENT) \"there is no script named \\\"a\\\"\"\r\nNO (NONEXISTENT) \"there is no script named \\\"zz\\\"\"\r\n\
         \"b\"\r\nOK \"Listscripts completed\"\r\n"
    );
}

#[test]
fn section_2_11_renamescript() {
    let client = format!(
        "{}PUTSCRIPT \"a\" \"keep;\"\r\nPUTSCRIPT \"b\" \"keep;\"\r\nSETACTIVE \"a\"\r\nRENAMESCRIPT \"a\" \"b\"\r\n\
         RENAMESCRIPT \"a\" \"c\"\r\nRENAMESCRIPT \"nope\" \"d\"\r\nLISTSCRIPTS\r\n",
        login()
    );
    assert_eq!(
        run(&client),
        "OK \"Logged in\"\r\nOK \"Putscript completed\"\r\nOK \"Putscript completed\"\r\nOK \"Setactive completed\"\r\n\
         NO (ALREADYEXISTS) \"a script with that name already exists\"\r\nOK \"Renamescript completed\"\r\n\
         NO (NONEXISTENT) \"there is no script named \\\"nope\\\"\"\r\n\
         \"b\"\r\n\"c\" ACTIVE\r\nOK \"Listscripts completed\"\r\n"
    );
}

#[test]
fn section_2_12_checkscript() {
    let out = run(&format!("{}CHECKSCRIPT \"keep;\"\r\nCHECKSCRIPT {{8+}}\r\nfrob;\r\n\r\n", login()));
    assert!(out.starts_with("OK \"Logged in\"\r\nOK \"Script is valid\"\r\nNO \"line 1, column 1: "), "{out}");
}

#[test]
fn section_2_13_noop_with_tag_and_2_14_unauthenticate_and_2_4_logout() {
    let client =
        format!("NOOP\r\nNOOP \"STARTTLS-SYNC-42\"\r\n{}UNAUTHENTICATE\r\nLISTSCRIPTS\r\nLOGOUT\r\nNOOP\r\n", login());
    assert_eq!(
        run(&client),
        "OK \"Done\"\r\nOK (TAG \"STARTTLS-SYNC-42\") \"Done\"\r\nOK \"Logged in\"\r\nOK \"Unauthenticate completed\"\r\n\
         NO \"authenticate first\"\r\nOK \"Logout completed\"\r\n"
    );
}

#[test]
fn errors_are_no_and_the_session_goes_on() {
    let client = format!(
        "FROB\r\nGETSCRIPT\r\n{}GETSCRIPT \"a\u{1}b\"\r\nPUTSCRIPT \"x\" {{2+}}\r\n\u{00ff}\u{00fe}\r\nCHECKSCRIPT {{1+}}\r\n\u{0080}\r\n\
         PUTSCRIPT \"x\" \"open\r\nUNAUTHENTICATE now\r\nNOOP\r\n",
        login()
    );
    let mut client = client.into_bytes();
    // Replace the two-character literal with two bytes that are not UTF-8.
    let at = client.windows(4).position(|w| w == "\u{00ff}\u{00fe}".as_bytes()).unwrap();
    client.splice(at..at + 4, [0xff, 0xfe]);
    let at = client.windows(2).position(|w| w == "\u{0080}".as_bytes()).unwrap();
    client.splice(at..at + 2, [0x80]);
    let mut harness = Harness::new(config(), true);
    let greeting = harness.out.len();
    harness.feed(&client);
    assert_eq!(
        String::from_utf8(harness.out[greeting..].to_vec()).unwrap(),
        "NO \"unknown command FROB\"\r\nNO \"usage: GETSCRIPT name\"\r\nOK \"Logged in\"\r\n\
         NO \"script name contains a control character\"\r\nNO \"script is not valid UTF-8\"\r\nNO \"script is not valid UTF-8\"\r\n\
         NO \"unterminated quoted string\"\r\nNO \"this command takes no arguments\"\r\nOK \"Done\"\r\n"
    );
}

#[test]
fn a_line_over_the_limit_ends_in_bye() {
    let long = format!("NOOP \"{}\r\nNOOP\r\n", "a".repeat(crate::command::MAX_LINE));
    let mut harness = Harness::new(config(), true);
    let greeting = harness.out.len();
    harness.feed(long.as_bytes());
    assert_eq!(String::from_utf8(harness.out[greeting..].to_vec()).unwrap(), "BYE \"line too long\"\r\n");
}

#[test]
fn answers_reach_only_a_waiting_session() {
    let mut session = Session::new(config(), true);
    let response = session.answered(Ok(Answer::Done { warnings: Vec::new() }));
    assert_eq!(response, Response::no("no request in progress"));
}
