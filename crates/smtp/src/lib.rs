//! Sans-I/O SMTP server protocol (RFC 5321): turning bytes into commands ([`command`]), reading a DATA
//! body ([`data`]), formatting replies ([`reply`]) and the session state machine ([`session`]).
//!
//! Nothing here does I/O or depends on an async runtime: the connection task in `smtp-ingress` feeds
//! bytes in, writes the replies out and performs the lookups the session asks for. Command parsing is
//! delegated to `smtp-proto` once our framing has found a complete line within the length limit.

pub mod command;
pub mod data;
pub mod reply;
pub mod session;

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
