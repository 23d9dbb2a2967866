//! Any bytes as a client's side of a session (commands, SASL lines, DATA bodies and BDAT chunks), with
//! every directory answer and credential check failing or succeeding by the input's own bytes: the state
//! machine must never panic, and must never queue a message without a recipient.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbus_smtp::Decode;
use mailbus_smtp::command::CommandDecoder;
use mailbus_smtp::data::DataProgress;
use mailbus_smtp::session::{
    Action, AuthenticatedUser, BareLf, DataOutcome, Enforcement, Expect, LongLines, Mode, Session, SessionConfig, SpfVerdict,
    TlsInfo, Verdict,
};

fn config(mode: Mode) -> SessionConfig {
    SessionConfig {
        hostname: "mx.test".into(),
        max_message_size: 4096,
        max_recipients: 5,
        mode,
        starttls_available: true,
        plaintext_auth: true,
        max_errors: 50,
        max_auth_failures: 3,
        long_lines: LongLines::Reject,
        bare_lf: BareLf::Reject,
        spf: Enforcement::Enforce,
    }
}

fn check(outcome: &DataOutcome) {
    if let DataOutcome::Enqueue(message) = outcome {
        assert!(!message.recipients.is_empty(), "a message with no recipient was queued");
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, mut rest)) = input.split_first() else { return };
    let mode = if selector & 1 == 0 { Mode::Mx } else { Mode::Submission };
    let mut session = Session::new(config(mode), None);
    let mut decoder = CommandDecoder::default();
    let mut answers = input.iter().cycle().copied();
    let mut yes = move || answers.next().unwrap_or(0) & 1 == 1;
    for _ in 0..10_000 {
        let decoded = match session.expects() {
            Expect::Command => decoder.decode(rest).and_then(|c| Ok::<_, ()>(Ok(c)), |_| ()),
            Expect::SaslResponse => decoder.decode_sasl_line(rest).and_then(|l| Ok::<_, ()>(Err(l)), |_| ()),
        };
        let (action, consumed) = match decoded {
            Decode::Incomplete => return,
            Decode::Skip { consumed } => {
                rest = &rest[consumed..];
                continue;
            }
            Decode::Item { item: Ok(command), consumed } => (session.handle(Ok(command)), consumed),
            Decode::Item { item: Err(line), consumed } => (session.handle_sasl_response(Ok(line)), consumed),
            Decode::Invalid { consumed, .. } => (session.handle(Err(mailbus_smtp::command::CommandError::LineTooLong)), consumed),
        };
        rest = &rest[consumed..];
        match action {
            Action::Reply(_) => {}
            Action::Close(_) => return,
            Action::CheckRecipient(c) => {
                let verdict = if yes() { Verdict::Local } else { Verdict::NotLocal };
                session.recipient_checked(c, verdict);
            }
            Action::CheckSender(c) => {
                session.sender_checked(c, Some(yes()));
            }
            Action::VerifySpf(c) => {
                session.spf_verified(c, if yes() { SpfVerdict::Pass } else { SpfVerdict::Fail });
            }
            Action::StartTls(_) => session.tls_started(TlsInfo { version: "TLSv1.3".into(), cipher: "x".into() }),
            Action::Authenticate(_) => {
                let user = yes().then(|| AuthenticatedUser { account_id: 1, address: "a@example.org".into() });
                if let Action::Close(_) = session.authenticated(user) {
                    return;
                }
            }
            Action::ReceiveData(_) => {
                let mut reader = session.data_reader();
                let (used, progress) = reader.feed(rest, &mut Vec::new());
                rest = &rest[used..];
                if progress == DataProgress::Incomplete {
                    return;
                }
                check(&session.data_received(progress));
            }
            Action::ReceiveChunk { .. } => {
                let mut reader = session.chunk_reader();
                let (used, complete) = reader.feed(rest, &mut Vec::new());
                rest = &rest[used..];
                if !complete {
                    return;
                }
                check(&session.chunk_received(reader));
            }
        }
    }
});
