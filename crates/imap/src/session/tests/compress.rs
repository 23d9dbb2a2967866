//! RFC 4978 COMPRESS=DEFLATE, the session's part: when it is offered and accepted. The compression itself
//! is the wire's (`mailbus_acceptor::deflate`, with its own tests).

use super::*;

/// RFC 4978 §3: COMPRESS DEFLATE once logged in; the OK goes out uncompressed and the connection turns
/// compression on; a second COMPRESS is NO [COMPRESSIONACTIVE], even after a new login.
#[test]
fn compress_deflate_is_offered_after_login_answered_once_and_then_compression_active() {
    let mut client = Client::new();
    let caps = client.send("c0 CAPABILITY\r\n");
    assert!(!caps.contains("COMPRESS=DEFLATE"), "{caps}");
    assert_eq!(client.send("c1 COMPRESS DEFLATE\r\n"), "c1 BAD log in first\r\n");
    client.login();
    let caps = client.send("c2 CAPABILITY\r\n");
    assert!(caps.split([' ', '\r']).any(|c| c == "COMPRESS=DEFLATE"), "{caps}");
    assert_eq!(client.send("c3 COMPRESS GZIP\r\n"), "c3 BAD unknown command or syntax error\r\n");
    let (step, reply) = client.send_step("c4 COMPRESS DEFLATE\r\n");
    assert!(matches!(step, Step::Compress), "{step:?}");
    assert_eq!(reply, "c4 OK DEFLATE active\r\n");
    client.session.compression_started();
    assert_eq!(client.send("c5 COMPRESS DEFLATE\r\n"), "c5 NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n");
    assert_eq!(client.send("c6 UNAUTHENTICATE\r\n"), "c6 OK UNAUTHENTICATE completed\r\n");
    client.login();
    assert_eq!(client.send("c7 COMPRESS DEFLATE\r\n"), "c7 NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n");
}

/// A command pipelined behind COMPRESS came before the client saw the OK (RFC 4978 §3 has it wait): it is
/// not run as if it were compressed input, nor answered.
#[test]
fn a_command_pipelined_behind_compress_is_dropped() {
    let mut client = Client::new();
    client.login();
    let (step, reply) = client.send_step("c1 COMPRESS DEFLATE\r\nc2 NOOP\r\n");
    assert!(matches!(step, Step::Compress), "{step:?}");
    assert_eq!(reply, "c1 OK DEFLATE active\r\n");
    client.session.compression_started();
    client.session.wire().input.clear();
    assert_eq!(client.send("c3 NOOP\r\n"), "c3 OK NOOP completed\r\n");
}

/// TLS goes under compression, never over it (RFC 4978 §4): once compressed, a connection that returns to
/// the not-authenticated state is not offered STARTTLS, and STARTTLS is refused.
#[test]
fn starttls_is_neither_offered_nor_accepted_after_compress() {
    // A plain connection (143) where the policy allows a plaintext login.
    let plain = Config { plaintext_allowed: true, ..config(false) };
    let mut client = Client::on(MemoryStore::default(), plain);
    let caps = client.send("c0 CAPABILITY\r\n");
    assert!(caps.split([' ', '\r']).any(|c| c == "STARTTLS"), "offered on a plain connection: {caps}");
    client.login();
    let (step, _) = client.send_step("c1 COMPRESS DEFLATE\r\n");
    assert!(matches!(step, Step::Compress), "{step:?}");
    client.session.compression_started();
    assert_eq!(client.send("c2 UNAUTHENTICATE\r\n"), "c2 OK UNAUTHENTICATE completed\r\n");
    let caps = client.send("c3 CAPABILITY\r\n");
    assert!(!caps.contains("STARTTLS"), "{caps}");
    assert_eq!(client.send("c4 STARTTLS\r\n"), "c4 BAD STARTTLS is not possible after COMPRESS\r\n");
}
