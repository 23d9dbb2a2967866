//! Any bytes, split anywhere, through the command decoder and the SASL line decoder: no panic, every byte
//! accounted for, and the same commands and lines whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbus_pop3::command::CommandDecoder;

fuzz_target!(|input: &[u8]| {
    let commands = mailbus_lines::decode_at_every_split(input, CommandDecoder::decode);
    for split in &commands {
        assert_eq!(split, &commands[0], "decoding commands depends on where the input was split");
    }
    let lines = mailbus_lines::decode_at_every_split(input, CommandDecoder::decode_sasl_line);
    for split in &lines {
        assert_eq!(split, &lines[0], "decoding SASL lines depends on where the input was split");
    }
});
