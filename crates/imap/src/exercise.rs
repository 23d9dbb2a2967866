//! The fuzz target's and the robustness test's way in: bytes through the framer, and every command through
//! the session's pure conversions.

use imap_codec::decode::Decoder;
use imap_next::server::{Error as FrameError, Event, Options, Server};
use imap_next::{Interrupt, Io, State as _};
use imap_types::command::CommandBody;
use imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
use imap_types::mailbox::ListMailbox;
use imap_types::response::{Greeting, Status};
use imap_types::sequence::SequenceSet;

use crate::render;
use crate::session::{has_modseq, mailbox_name_in, section_request, wire_mailbox_in};

fn bad(message: &str) -> Status<'static> {
    Status::bad(None, None, message.to_owned()).expect("ASCII text")
}

/// (sequence sets, sections, search keys, mailbox names), as the session would before calling the store.
/// For the robustness test and the fuzz target (`services/access/fuzz`); returns how many commands and
/// how many framing errors there were.
#[doc(hidden)]
pub fn exercise(input: &[u8]) -> (usize, usize) {
    let mut options = Options::default();
    options.crlf_relaxed = true;
    options.max_literal_size = 1024;
    options.max_command_size = 4096;
    let mut server = Server::new(options, Greeting::ok(None, "ready").expect("valid greeting"));
    server.enqueue_input(input);
    let (mut commands, mut errors) = (0, 0);
    for _ in 0..256 {
        match server.next() {
            Ok(Event::CommandReceived { command }) => {
                commands += 1;
                convert(&command.body);
            }
            Ok(Event::CommandAuthenticateReceived { .. }) => {
                let _ = server.authenticate_finish(bad("done"));
            }
            Ok(Event::IdleCommandReceived { .. }) => {
                let _ = server.idle_reject(bad("done"));
            }
            Ok(_) | Err(Interrupt::Io(Io::Output(_))) => {}
            Err(Interrupt::Io(Io::NeedMoreInput)) => break,
            Err(Interrupt::Error(error)) => {
                errors += 1;
                if let FrameError::MalformedMessage { discarded_bytes } = &error
                    && let Some((_, rest)) = render::rewrite_extended(discarded_bytes.declassify())
                    && let Ok((_, command)) = imap_codec::CommandCodec::default().decode(&rest)
                {
                    convert(&command.body);
                }
            }
        }
    }
    (commands, errors)
}

/// Everything the session computes from a command before it calls the store.
fn convert(body: &CommandBody<'_>) {
    let uids: Vec<u32> = vec![1, 2, 5, 9, 4_294_967_295];
    match body {
        CommandBody::Fetch { sequence_set, macro_or_item_names, .. } => {
            let _ = render::resolve(sequence_set, &uids, true);
            let _ = render::resolve(sequence_set, &uids, false);
            let _ = render::out_of_range(sequence_set, uids.len());
            if let MacroOrMessageDataItemNames::MessageDataItemNames(names) = macro_or_item_names {
                for name in names {
                    if let MessageDataItemName::BodyExt { section, partial, .. } = name {
                        let _ = section_request(section.as_ref(), *partial);
                    }
                }
            }
        }
        CommandBody::Search { criteria, .. } => {
            for key in criteria.as_ref() {
                let _ = render::search_key(key, &uids, &uids);
                let _ = has_modseq(key);
            }
        }
        CommandBody::Select { mailbox, .. }
        | CommandBody::Status { mailbox, .. }
        | CommandBody::Copy { mailbox, .. } => {
            for utf8 in [false, true] {
                if let Some(name) = mailbox_name_in(mailbox, utf8) {
                    let _ = wire_mailbox_in(&name, utf8);
                }
            }
        }
        CommandBody::List { mailbox_wildcard: ListMailbox::String(s), .. } => {
            let _ = render::from_utf7(&String::from_utf8_lossy(s.as_ref()));
        }
        CommandBody::Store { sequence_set, .. } | CommandBody::ExpungeUid { sequence_set } => {
            let text = render::uid_set_text(&render::resolve(sequence_set, &uids, true));
            let _ = SequenceSet::try_from(text.as_str());
        }
        _ => {}
    }
}

#[cfg(test)]
mod robustness {
    //! The session's pure layer fed what a hostile or broken client sends: valid commands cut, spliced
    //! and mutated byte by byte (a deterministic generator, so a failure reproduces). Every input must
    //! come out of imap-next as a command or an error, and every command through our conversions,
    //! without a panic.

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
    fn mutated_commands_never_panic_the_framer_or_the_conversions() {
        let mut rng = Rng(0x5eed_1234_abcd_0042);
        let (mut commands, mut errors) = (0, 0);
        for _ in 0..3_000 {
            let (c, e) = exercise(&mutate(&mut rng));
            commands += c;
            errors += e;
        }
        // Both kinds occur, so the generator exercises the conversions and the error paths alike.
        assert!(commands > 100 && errors > 100, "{commands} commands, {errors} errors");
    }
}
