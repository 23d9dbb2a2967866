//! RFC 4978 COMPRESS=DEFLATE through the whole stack, with Python's zlib on the client's side of a bare
//! socket: a large message fetched compressed (fewer bytes on the wire than in the message), over 143
//! and over 993 (TLS around the compressed stream); a corrupt stream and a decompression bomb end the
//! session with a BYE, and the server goes on.

use mailbus_tests::clients::imap_compress;
use mailbus_tests::{Infra, TestStack};
use serde_json::Value;

fn lines(result: &Value, key: &str) -> Vec<String> {
    result[key].as_array().unwrap_or(&Vec::new()).iter().map(|l| l.as_str().unwrap_or_default().to_owned()).collect()
}

/// A message of about 300 KB of ordinary text: it compresses well.
fn large_message() -> Vec<u8> {
    let mut message = b"From: <sender@example.net>\r\nTo: <zip@example.org>\r\nSubject: large\r\n\r\n".to_vec();
    for i in 0..6000 {
        message.extend_from_slice(format!("Line {i} of a long report that repeats itself a good deal.\r\n").as_bytes());
    }
    message
}

fn assert_fetched_compressed(result: &Value, message_len: usize) {
    assert_eq!(lines(result, "compress"), ["a2 OK DEFLATE active"], "{result}");
    let seen = lines(result, "lines");
    assert!(seen.iter().any(|l| l.starts_with("a3 OK [READ-WRITE]")), "{seen:?}");
    let literal = format!("BODY[] {{{message_len}}} <literal of {message_len} octets>");
    assert!(seen.iter().any(|l| l.starts_with("* 1 FETCH (") && l.contains(&literal)), "{literal} not in {seen:?}");
    assert!(seen.iter().any(|l| l == "a4 OK FETCH completed"), "{seen:?}");
    assert!(seen.iter().any(|l| l == "a5 NO [COMPRESSIONACTIVE] DEFLATE is already active"), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("a6 OK")), "{seen:?}");
    let (wire, plain) = (result["wire"].as_u64().unwrap() as usize, result["plain"].as_u64().unwrap() as usize);
    // The FETCH answer inflated holds the whole message; what crossed the wire is far less.
    assert!(plain > message_len, "{plain} inflated bytes for a {message_len}-byte message");
    assert!(wire * 4 < message_len, "{wire} bytes on the wire for a {message_len}-byte message");
}

#[tokio::test(flavor = "multi_thread")]
async fn compress_deflate_fetches_a_large_message_in_fewer_bytes_over_plain_and_tls() {
    let stack = TestStack::start().await;
    stack.add_account("zip@example.org", "zip pw").await;
    let message = large_message();
    stack.deliver("compress-1", "zip@example.org", &message).await.expect("delivered");
    let login = ("zip@example.org", "zip pw");

    let plain = imap_compress(stack.imap_addr(), None, login, "fetch").await;
    assert_fetched_compressed(&plain, message.len());

    let cafile = Infra::get().tls_cert.clone();
    let tls = imap_compress(stack.imaps.unwrap(), Some(&cafile), login, "fetch").await;
    assert_fetched_compressed(&tls, message.len());
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_stream_or_a_bomb_ends_the_session_with_bye_and_the_server_goes_on() {
    let stack = TestStack::start().await;
    stack.add_account("zap@example.org", "zap pw").await;
    let login = ("zap@example.org", "zap pw");

    let corrupt = imap_compress(stack.imap_addr(), None, login, "corrupt").await;
    assert_eq!(lines(&corrupt, "compress"), ["a2 OK DEFLATE active"], "{corrupt}");
    assert_eq!(lines(&corrupt, "lines"), ["* BYE compressed input is not valid DEFLATE"], "{corrupt}");
    assert_eq!(corrupt["closed"], true);

    // 256 KiB of command line from a few hundred compressed bytes: the limit on a command's text applies
    // to what was inflated, as to a command sent plain.
    let bomb = imap_compress(stack.imap_addr(), None, login, "bomb").await;
    assert_eq!(lines(&bomb, "lines"), ["* BYE [LIMIT] command line too long"], "{bomb}");
    assert_eq!(bomb["closed"], true);

    let again = imap_compress(stack.imap_addr(), None, login, "fetch").await;
    assert_eq!(lines(&again, "compress"), ["a2 OK DEFLATE active"], "{again}");
    stack.stop().await;
}
