//! Arbitrary bytes as a logged-in IMAP client's input to the real session (over the in-memory store):
//! nothing may panic in the framer, the parser, the session or its conversions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mailbus_imap::exercise(data);
});
