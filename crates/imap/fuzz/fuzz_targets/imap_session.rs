//! Arbitrary bytes as an IMAP client's input: nothing may panic in the framer, the parser, or the
//! session's conversions of what they yield.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mailbus_imap::exercise(data);
});
