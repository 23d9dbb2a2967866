//! Any bytes, split anywhere, through the command decoder (lines, quoted strings, literals): no panic, no
//! endless zero-octet skip, and the same lines whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbus_managesieve::command::{Command, CommandDecoder};

fuzz_target!(|input: &[u8]| {
    let lines = mailbus_lines::decode_at_every_split(input, CommandDecoder::decode);
    for split in &lines {
        assert_eq!(split, &lines[0], "decoding depends on where the input was split");
    }
    for line in lines.into_iter().next().unwrap_or_default().into_iter().flatten() {
        let _ = Command::parse(line);
    }
});
