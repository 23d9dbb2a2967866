//! Transcript tests: a client's bytes go through the real framer and session, over the in-memory store
//! (`crate::memory`), and what the session sends is compared line by line with what the RFCs say.

mod auth;
mod compress;
mod errors;
mod extensions;
mod idle;
mod messages;
mod multiappend;
mod notify;
mod search_context;
mod select;

use super::*;
use crate::memory::{MemoryStore, MemoryWire, PASSWORD, USER};

/// One client's connection to a session.
pub(super) struct Client {
    session: Session<MemoryStore, MemoryWire>,
    pub(super) store: MemoryStore,
}

pub(super) fn config(tls: bool) -> Config {
    Config { max_message_size: 10_000, max_auth_failures: 3, tls, plaintext_allowed: false }
}

impl Client {
    /// A client over TLS, greeting read.
    pub(super) fn new() -> Client {
        Client::on(MemoryStore::default(), config(true))
    }

    /// Another client of the same store, logged in.
    pub(super) fn another(&self) -> Client {
        let mut client = Client::on(self.store.clone(), config(true));
        client.login();
        client
    }

    pub(super) fn on(store: MemoryStore, config: Config) -> Client {
        let mut client = Client { session: Session::new(store.clone(), MemoryWire::default(), config), store };
        client.step();
        client
    }

    /// Runs the session on what it has; what it sent.
    fn step(&mut self) -> (Step, String) {
        let step = futures::executor::block_on(self.session.advance());
        (step, self.session.wire().take_sent())
    }

    /// Sends `input` (lines end in CRLF); what came back.
    pub(super) fn send(&mut self, input: &str) -> String {
        self.send_step(input).1
    }

    pub(super) fn send_step(&mut self, input: &str) -> (Step, String) {
        self.session.wire().input.extend_from_slice(input.as_bytes());
        self.step()
    }

    /// A mailbox event reaching the session; what it sent.
    pub(super) fn event(&mut self, event: &pb::MailboxEvent) -> String {
        futures::executor::block_on(self.session.mailbox_event(event));
        self.session.wire().take_sent()
    }

    pub(super) fn login(&mut self) {
        let reply = self.send(&format!("l1 LOGIN {USER} {PASSWORD}\r\n"));
        assert!(reply.starts_with("l1 OK [CAPABILITY IMAP4rev1 "), "{reply}");
    }

    /// Logged in with INBOX selected; SELECT's answer.
    pub(super) fn select_inbox(&mut self) -> String {
        self.login();
        self.send("s1 SELECT INBOX\r\n")
    }
}

/// `n` small messages in INBOX.
pub(super) fn fill(store: &MemoryStore, n: usize) {
    for i in 1..=n {
        store.deliver("INBOX", format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes(), &[]);
    }
}

/// The lines of a reply.
pub(super) fn lines(reply: &str) -> Vec<&str> {
    reply.split_terminator("\r\n").collect()
}
