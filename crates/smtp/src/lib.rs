//! Sans-I/O SMTP server protocol (RFC 5321 and the extensions we offer): turning bytes into commands and
//! SASL lines ([`command`]), reading DATA and BDAT bodies as they stream in, under the size and line
//! policies ([`data`]), formatting replies ([`reply`]) and the session state machine ([`session`]), which
//! decides every reply, including the STARTTLS reset, the AUTH exchange, BDAT chunks and the error caps.
//!
//! Nothing here does I/O or depends on an async runtime: the connection task in `smtp-ingress` feeds
//! bytes in, writes the replies out, performs the lookups, credential checks and TLS handshakes the session
//! asks for, and reads BDAT chunks by their announced length. Command parsing is delegated to `smtp-proto`
//! once our framing has found a complete line within the length limit.

pub mod command;
pub mod data;
pub mod reply;
pub mod session;
pub mod trace;

pub use mailbus_lines::Decode;
