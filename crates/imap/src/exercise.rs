//! The fuzz target's and the robustness test's way in: arbitrary bytes as a logged-in client's input to
//! the real session, over the in-memory store with a few messages and INBOX selected.

use crate::memory::{MemoryStore, MemoryWire, PASSWORD, USER};
use crate::session::{Config, Session, Step};

/// How the session answered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// Tagged OK and NO: commands the session parsed and carried out or refused.
    pub completed: usize,
    /// BAD, tagged or not: input it could not take as a command.
    pub bad: usize,
}

/// Runs `input` through a session as a logged-in client with INBOX selected would send it, to the end of
/// the input or of the session. For the robustness test and the fuzz target (`crates/imap/fuzz`).
pub fn exercise(input: &[u8]) -> Answered {
    let store = MemoryStore::default();
    store.create("Trash", "\\Trash");
    for (i, flags) in [&[][..], &["\\Seen"], &["\\Deleted", "$Work"]].into_iter().enumerate() {
        store.deliver("INBOX", format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes(), flags);
    }
    let config = Config { max_message_size: 64 * 1024, max_auth_failures: 3, tls: true, plaintext_allowed: false };
    let mut session = Session::new(store, MemoryWire::default(), config);
    let start = format!("x1 LOGIN {USER} {PASSWORD}\r\nx2 SELECT INBOX\r\n");
    session.wire().input.extend_from_slice(start.as_bytes());
    let _ = run(&mut session);
    session.wire().take_sent();
    session.wire().input.extend_from_slice(input);
    run(&mut session);
    let sent = session.wire().take_sent();
    let mut answered = Answered::default();
    for line in sent.lines() {
        let mut words = line.split(' ');
        match (words.next(), words.next()) {
            (Some(_), Some("BAD")) => answered.bad += 1,
            (Some(tag), Some("OK" | "NO")) if tag != "*" => answered.completed += 1,
            _ => {}
        }
    }
    answered
}

/// Advances the session until it wants more input or ends (STARTTLS is taken as a handshake done,
/// COMPRESS as compression turned on: the in-memory wire stays plain).
fn run(session: &mut Session<MemoryStore, MemoryWire>) -> Step {
    loop {
        match futures::executor::block_on(session.advance()) {
            Step::StartTls => session.tls_started(),
            Step::Compress => session.compression_started(),
            step => return step,
        }
    }
}

#[cfg(test)]
mod robustness {
    //! The session fed what a hostile or broken client sends: valid commands cut, spliced and mutated
    //! byte by byte (a deterministic generator, so a failure reproduces). Every input must be answered,
    //! as a command or as an error, without a panic.

    use super::*;

    const SEEDS: &[&[u8]] = &[
        b"a1 UID FETCH 1:*,4294967295:3 (UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (Subject From)]<0.100> BODYSTRUCTURE MODSEQ) (CHANGEDSINCE 5 VANISHED)\r\n",
        b"a2 SEARCH CHARSET UTF-8 OR (FROM \"x\" SINCE 1-Jan-2026) NOT (UID 1:* LARGER 5 HEADER Subject \"%_\") MODSEQ 7 1,3:*\r\n",
        b"a3 STORE 1:* +FLAGS.SILENT (\\Seen $Work) (UNCHANGEDSINCE 0)\r\n",
        b"a4 SELECT &AOQ-&APw-/Sub (QRESYNC (1 2 1:9))\r\n",
        b"a5 APPEND INBOX (\\Seen) \"01-Jan-2026 00:00:00 +0000\" {5+}\r\nhello\r\n",
        b"a6 LIST \"\" \"%/&2D3eAA-*\"\r\n",
        b"a7 COPY 2:1 \"Tr&-ash\"\r\n",
        b"a8 STATUS INBOX (MESSAGES UIDNEXT SIZE HIGHESTMODSEQ)\r\n",
        b"a9 FETCH 1 (BODY[] BODY[TEXT]<4294967295.4294967295> RFC822 RFC822.HEADER)\r\n",
        b"b1 IDLE\r\nDONE\r\nb2 UID MOVE 2:* Trash\r\nb3 EXPUNGE\r\n",
        b"b4 SEARCH RETURN (SAVE MIN) UNSEEN\r\nb5 FETCH $ (FLAGS)\r\nb6 UNAUTHENTICATE\r\n",
        b"b7 NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER]) MessageExpunge FlagChange)) (subtree (Lists {5+}\r\nTrash) (MailboxName SubscriptionChange))\r\nb8 NOTIFY NONE\r\n",
        b"b9 COMPRESS DEFLATE\r\nc1 NOOP\r\nc2 COMPRESS DEFLATE\r\n",
        b"b7 APPEND INBOX {2+}\r\nab (\\Seen) ~{1+}\r\nc CATENATE (TEXT {1+}\r\nd URL \"/INBOX;UIDVALIDITY=1001/;UID=1/;SECTION=HEADER/;PARTIAL=0.3\" URL imap://alice@example.org@imap.example.org/INBOX/;UID=1)\r\n",
    ];

    /// xorshift64*: small, deterministic, good enough to scramble bytes.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng) -> Vec<u8> {
        let mut input = SEEDS[rng.below(SEEDS.len())].to_vec();
        for _ in 0..rng.below(4) {
            match rng.below(4) {
                0 if !input.is_empty() => {
                    let i = rng.below(input.len());
                    input[i] = b"0123456789*:,()[]<>{}+\"\\ \r\n%&-~.\x00\xff"[rng.below(34)];
                }
                1 if !input.is_empty() => {
                    let (a, b) = (rng.below(input.len()), rng.below(input.len()));
                    input.drain(a.min(b)..a.max(b));
                }
                2 => {
                    let other = SEEDS[rng.below(SEEDS.len())];
                    let at = rng.below(input.len() + 1);
                    let piece = &other[rng.below(other.len())..];
                    input.splice(at..at, piece.iter().copied());
                }
                _ => input.extend_from_slice(b"\r\n"),
            }
        }
        input
    }

    #[test]
    fn mutated_commands_never_panic_the_session() {
        let mut rng = Rng(0x5eed_1234_abcd_0042);
        let (mut commands, mut errors) = (0, 0);
        for _ in 0..3_000 {
            let answered = exercise(&mutate(&mut rng));
            commands += answered.completed;
            errors += answered.bad;
        }
        // Both kinds occur, so the generator exercises the commands and the error paths alike.
        assert!(commands > 100 && errors > 100, "{commands} commands, {errors} errors");
    }
}
