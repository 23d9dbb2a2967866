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

pub use mailbus_lines::Decode;
