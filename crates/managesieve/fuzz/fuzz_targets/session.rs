//! Any bytes as a client's side of a session, with the TLS setting, the policy and every answer chosen by
//! the input's own bytes: the state machine must never panic, never have a password checked where
//! plaintext logins are refused, never call the script store before login, and never allow more failed
//! logins than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbus_managesieve::Decode;
use mailbus_managesieve::command::CommandDecoder;
use mailbus_managesieve::session::{Action, Answer, AuthOutcome, Failure, Session, SessionConfig};

const MAX_AUTH_FAILURES: usize = 3;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, mut rest)) = input.split_first() else { return };
    let config = SessionConfig {
        hostname: "sieve.test".into(),
        starttls_available: selector & 2 != 0,
        plaintext_allowed: selector & 4 != 0,
        max_auth_failures: MAX_AUTH_FAILURES,
        max_redirects: 4,
    };
    let plaintext_allowed = config.plaintext_allowed;
    let mut session = Session::new(config, selector & 1 != 0);
    let mut decoder = CommandDecoder::default();
    let mut answers = input.iter().cycle().copied();
    let mut answer = move || answers.next().unwrap_or(0);
    let mut failures = 0;
    for _ in 0..10_000 {
        let (line, consumed) = match decoder.decode(rest) {
            Decode::Incomplete => return,
            Decode::Skip { consumed } => {
                assert!(consumed > 0 || rest.is_empty(), "a zero-octet skip");
                rest = &rest[consumed..];
                continue;
            }
            Decode::Item { item, consumed } => (Ok(item), consumed),
            Decode::Invalid { error, consumed } => (Err(error), consumed),
        };
        rest = &rest[consumed..];
        let mut action = session.handle(line);
        if let Action::Authenticate { .. } = action {
            assert!(session.tls_active() || plaintext_allowed, "a password sent in the clear was checked");
            let outcome = match answer() % 4 {
                0 => AuthOutcome::Ok,
                1 => AuthOutcome::Invalid,
                2 => AuthOutcome::Throttled,
                _ => AuthOutcome::Unavailable,
            };
            failures += usize::from(outcome == AuthOutcome::Invalid);
            action = session.authenticated(outcome);
        }
        assert!(failures <= MAX_AUTH_FAILURES, "more failed logins than the limit");
        match action {
            Action::Reply(_) => {}
            Action::Close(_) => return,
            Action::Authenticate { .. } => panic!("authenticated() asked for another check"),
            Action::StartTls(_) => {
                decoder = CommandDecoder::default();
                session.tls_started();
                assert!(session.tls_active());
            }
            Action::Call(_) => {
                assert!(session.is_authenticated(), "the script store was called before login");
                let result = match answer() % 3 {
                    0 => Ok(Answer::Done { warnings: Vec::new() }),
                    1 => Err(Failure::NonExistent),
                    _ => Err(Failure::Invalid("line 1, column 1: bad".into())),
                };
                session.answered(result);
            }
        }
    }
});
