//! Sans-I/O POP3 server protocol (RFC 1939, with CAPA and response codes from RFC 2449, STLS from
//! RFC 2595, AUTH PLAIN from RFC 5034 and UTF8 from RFC 6856): turning bytes into commands and SASL lines
//! ([`command`]), formatting responses ([`response`]), dot-stuffing message bodies for RETR and TOP
//! ([`stuffing`]) and the session state machine ([`session`]).
//!
//! Nothing here does I/O or depends on an async runtime: the connection task in `access` feeds bytes
//! in, writes the responses out, checks credentials and locks the maildrop, runs the TLS handshake, reads
//! and expunges messages when the session asks it to, and reports back. This crate never sees a password
//! store, a certificate or a message store.

pub mod command;
pub mod response;
pub mod session;
pub mod stuffing;

pub use mailbus_lines::Decode;
