//! Sans-I/O ManageSieve server protocol (RFC 5804): framing command lines and their literals into
//! tokens and commands ([`command`]), writing responses ([`response`]) and the session state machine
//! ([`session`]).
//!
//! Nothing here does I/O or depends on an async runtime: the connection task in `access` feeds bytes in,
//! writes the responses out, checks credentials, runs the TLS handshake and calls the mailbox role's
//! `Sieve` service when the session asks it to, and reports back. This crate never sees a password store,
//! a certificate or a stored script; it does not parse Sieve either (the mailbox role checks every script
//! it stores), and takes only the list of extensions from `mailbus-sieve`.

pub mod command;
pub mod response;
pub mod session;

pub use mailbus_lines::Decode;
