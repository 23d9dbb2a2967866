//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) server sessions, with the extensions mailbus offers,
//! without I/O. imap-next frames the client's bytes and imap-codec parses and writes IMAP; this crate owns
//! the session's states (not authenticated, authenticated, selected, logout, with AUTHENTICATE and IDLE as
//! typed modes and the ENABLE-d extensions), the selected-mailbox view (message numbers, UIDs, pending
//! expunges and flag updates, `\\Recent`), command dispatch and response rendering (`session`), and the
//! conversions between IMAP and the mailbox role's messages (`render` and the modules beside it).
//!
//! COMPRESS=DEFLATE is decided here (`Step::Compress`) and done in the connection's wire; NOTIFY's
//! syntax is `notify`, its events `session::notify`.
//!
//! It must not do I/O: it asks the mailbox role through the [`Store`] port and writes to the connection
//! through the [`Wire`] port, both implemented by the access role (gRPC, NATS, TCP and TLS) and, for the
//! transcript tests and the fuzz target, in memory (`memory`). It depends on no runtime, RPC or TLS crate.

mod binary_origin;
pub mod context;
mod create_special_use;
#[doc(hidden)]
pub mod exercise;
mod imap_url;
mod line_meter;
mod list_extended;
pub mod memory;
mod multiappend;
mod notify;
pub mod object_id;
mod recent;
pub mod render;
mod savedate;
pub mod session;
mod sort;
pub mod store;
mod thread;
mod unauthenticate;

pub use exercise::exercise;
pub use session::{Config, Session, Step};
pub use store::{LoginOutcome, Store, StoreError, Wire};

/// The hierarchy separator the store uses and IMAP clients see.
pub const DELIMITER: char = '/';
