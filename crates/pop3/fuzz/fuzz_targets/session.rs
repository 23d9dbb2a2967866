//! Any bytes as a client's side of a session (commands and SASL lines, decoded as the session expects),
//! with the TLS setting, the policy and every credentials check chosen by the input's own bytes: the state
//! machine must never panic, never have a password checked where plaintext logins are refused, never
//! stream a message that is not in the maildrop, and never allow more failed logins than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbus_pop3::Decode;
use mailbus_pop3::command::CommandDecoder;
use mailbus_pop3::session::{Action, AuthOutcome, Expect, Expire, Maildrop, MessageInfo, Session, SessionConfig};

const MAX_AUTH_FAILURES: usize = 3;

fn maildrop() -> Maildrop {
    let messages = (1..=3).map(|uid| MessageInfo { uid: uid * 10, size: u64::from(uid) * 100 }).collect();
    Maildrop { uidvalidity: 7, messages }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, mut rest)) = input.split_first() else { return };
    let config = SessionConfig {
        hostname: "pop.test".into(),
        stls_available: selector & 2 != 0,
        plaintext_allowed: selector & 4 != 0,
        max_auth_failures: MAX_AUTH_FAILURES,
        expire: Expire::Never,
    };
    let plaintext_allowed = config.plaintext_allowed;
    let mut session = Session::new(config, selector & 1 != 0);
    let mut decoder = CommandDecoder::default();
    let mut answers = input.iter().cycle().copied();
    let mut answer = move || answers.next().unwrap_or(0);
    let (mut logged_in, mut failures) = (false, 0);
    for _ in 0..10_000 {
        let (action, consumed) = match session.expects() {
            Expect::Command => match decoder.decode(rest) {
                Decode::Incomplete => return,
                Decode::Skip { consumed } => {
                    rest = &rest[consumed..];
                    continue;
                }
                Decode::Item { item, consumed } => (session.handle(Ok(item)), consumed),
                Decode::Invalid { error, consumed } => (session.handle(Err(error)), consumed),
            },
            Expect::SaslResponse => match decoder.decode_sasl_line(rest) {
                Decode::Incomplete => return,
                Decode::Skip { consumed } => {
                    rest = &rest[consumed..];
                    continue;
                }
                Decode::Item { item, consumed } => (session.handle_sasl_response(Ok(item)), consumed),
                Decode::Invalid { error, consumed } => (session.handle_sasl_response(Err(error)), consumed),
            },
        };
        rest = &rest[consumed..];
        let action = match action {
            Action::Authenticate { .. } => {
                assert!(session.tls_active() || plaintext_allowed, "a password sent in the clear was checked");
                let outcome = match answer() % 4 {
                    0 => AuthOutcome::Maildrop(maildrop()),
                    1 => AuthOutcome::Invalid,
                    2 => AuthOutcome::InUse,
                    _ => AuthOutcome::Unavailable,
                };
                logged_in = matches!(outcome, AuthOutcome::Maildrop(_));
                failures += usize::from(outcome == AuthOutcome::Invalid);
                session.authenticated(outcome)
            }
            other => other,
        };
        assert!(failures <= MAX_AUTH_FAILURES, "more failed logins than the limit");
        match action {
            Action::Reply(_) => {}
            Action::Close(_) => return,
            Action::Authenticate { .. } => panic!("authenticated() asked for another check"),
            Action::StartTls(_) => {
                // The connection would drop what is buffered; here the rest stands for what comes over TLS.
                decoder = CommandDecoder::default();
                session.tls_started();
                assert!(session.tls_active());
            }
            Action::Retrieve { uid, size, .. } => {
                assert!(logged_in, "a message was streamed before login");
                assert!(maildrop().messages.contains(&MessageInfo { uid, size }), "no such message {uid}");
            }
            Action::Update { deleted_uids } => {
                assert!(logged_in, "UPDATE before login");
                assert!(deleted_uids.iter().all(|uid| maildrop().messages.iter().any(|m| m.uid == *uid)));
                session.updated(answer() & 1 == 1);
                return;
            }
        }
    }
});
