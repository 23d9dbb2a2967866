//! Sans-I/O POP3 server protocol (RFC 1939, with CAPA and response codes from RFC 2449): turning bytes
//! into commands ([`command`]), formatting responses ([`response`]), dot-stuffing message bodies for
//! RETR and TOP ([`stuffing`]) and the session state machine ([`session`]).
//!
//! Nothing here does I/O or depends on an async runtime: the connection task in `access` feeds bytes
//! in, writes the responses out, checks credentials, reads and expunges messages when the session asks
//! it to, and reports back. This crate never sees a password store or a message store.

pub mod command;
pub mod response;
pub mod session;
pub mod stuffing;

/// The outcome of decoding from a byte buffer: enough bytes for an item, not enough yet, or bytes that
/// can never become a valid item. `consumed` says how many input bytes the caller may drop.
#[derive(Debug, PartialEq, Eq)]
pub enum Decode<T, E> {
    Incomplete,
    Item {
        item: T,
        consumed: usize,
    },
    Invalid {
        error: E,
        consumed: usize,
    },
    /// Bytes to drop with nothing to report, such as the tail of a line whose error was already reported.
    Skip {
        consumed: usize,
    },
}
