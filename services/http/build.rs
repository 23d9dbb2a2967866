//! Embeds every file of `webmail/` (the browser pages, written by hand, no build step) in the binary: it
//! writes `$OUT_DIR/webmail_files.rs`, a table of `(name, bytes)`, so that a new file under `webmail/`
//! needs no list kept in step here.

use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("webmail");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut table = String::from("pub const FILES: &[(&str, &[u8])] = &[\n");
    for name in names {
        let path = dir.join(&name);
        table.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    table.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("webmail_files.rs");
    std::fs::write(out, table).expect("writing the webmail file table");
}
