//! Whole-stack tests: real PostgreSQL, real nats-server, real clients. One test binary, so the servers
//! are started once and shared; every test has its own database and NATS prefix.

mod acceptance;
mod addressing;
mod admin;
mod backup;
mod delivery;
mod dkim;
mod failures;
mod flood;
mod forwarding;
mod hostile;
mod imap;
mod imap_compress;
mod imap_context;
mod imap_import;
mod imap_notify;
mod jmap;
mod jmap_email;
mod jmap_http;
mod jmap_objects;
mod mail_import;
mod mail_tools;
mod managesieve;
mod multiappend;
mod noloss;
mod ops;
mod partitions;
mod pop3;
mod rate_limits;
mod relay;
mod replicas;
mod search;
mod sender_auth;
mod sieve;
mod smtp;
mod store;
mod tracing;
mod webmail;

use std::time::Duration;

/// The mailbus binary the process tests run (`mailbus-under-test`, built with the tests).
pub fn under_test() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_mailbus-under-test"))
}

/// Generous bound for things that normally take milliseconds, so a loaded CI machine does not flake.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A small RFC 5322 message with CRLF line endings.
pub fn message(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@example.net>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.net>\r\n\r\nHello.\r\n.A line that starts with a dot.\r\n\r\nBye.\r\n"
    )
    .into_bytes()
}
