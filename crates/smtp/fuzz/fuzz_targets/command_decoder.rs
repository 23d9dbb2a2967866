//! Any bytes, split anywhere, through the command decoder: no panic, every byte accounted for, and the
//! same commands whatever the split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailbus_smtp::command::CommandDecoder;

fuzz_target!(|input: &[u8]| {
    let whole = mailbus_lines::decode_at_every_split(input, CommandDecoder::decode);
    for split in &whole {
        assert_eq!(format!("{split:?}"), format!("{:?}", whole[0]), "decoding depends on where the input was split");
    }
});
