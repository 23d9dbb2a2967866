//! Server-side TLS for the protocol roles (SMTP, POP3, IMAP): a rustls server config built from PEM
//! files or from a generated self-signed certificate, the handshake for implicit-TLS ports (465, 993,
//! 995), the in-place STARTTLS upgrade (RFC 3207, RFC 2595) and the facts a session records about what
//! was negotiated. It always uses the ring provider explicitly and never installs a process-wide default.
//!
//! It must not do protocol work: deciding when STARTTLS is allowed, discarding plaintext pipelined after
//! STARTTLS (RFC 3207 §4.2), handshake timeouts and logging belong to the session that calls it. There
//! is no client authentication and no certificate reloading here.

mod client;
mod error;
mod maybe_tls;
mod pem;
mod self_signed;
mod server;

pub use client::{client_config_system_roots, client_config_trusting, opportunistic_client_config};
pub use error::TlsError;
pub use maybe_tls::MaybeTls;
pub use self_signed::{CertifiedKeyPem, self_signed};
pub use server::{ServerTls, TlsFacts, facts};

/// The one crypto provider this crate uses, passed explicitly to every config it builds.
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
