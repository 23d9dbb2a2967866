//! Compiles proto/mailbus/v1 with protox, so no system protoc is needed.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "mailbus/v1/directory.proto",
    "mailbus/v1/mailbox.proto",
    "mailbus/v1/queue.proto",
    "mailbus/v1/events.proto",
    "mailbus/v1/jmap.proto",
    "mailbus/v1/sieve.proto",
    "mailbus/v1/dkim.proto",
    "mailbus/v1/errors.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // For gRPC reflection.
    std::fs::write(out.join("mailbus_descriptor.bin"), fds.encode_to_vec())?;
    // A DKIM private key must not reach a log or a trace through `{:?}`: `SigningKey` gets a Debug
    // written by hand (src/lib.rs) that leaves the key out.
    tonic_prost_build::configure().skip_debug(["mailbus.v1.SigningKey"]).compile_fds(fds)?;
    Ok(())
}
