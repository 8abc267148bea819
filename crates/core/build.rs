//! Lays out the embedded encodings' rank tables at build time (see
//! `src/rank_layout.rs`): the gzipped `.tiktoken` files in `data/` become
//! `OUT_DIR/<name>.ranks`, which `src/tokenizer.rs` embeds and reads in place.

use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;

#[path = "src/rank_layout.rs"]
mod rank_layout;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/rank_layout.rs");
    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ["cl100k_base", "o200k_base"] {
        let source = format!("data/{name}.tiktoken.gz");
        println!("cargo:rerun-if-changed={source}");
        let gzipped = std::fs::read(&source).unwrap_or_else(|e| panic!("{source}: {e}"));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gzipped[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        let tokens = parse_tiktoken(&text).unwrap_or_else(|e| panic!("{source}: {e}"));
        let borrowed: Vec<(&[u8], u32)> = tokens.iter().map(|(b, r)| (&b[..], *r)).collect();
        let layout = rank_layout::build(&borrowed);
        let target = Path::new(&out_dir).join(format!("{name}.ranks"));
        std::fs::write(&target, layout).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
    }
}

/// Parses a `.tiktoken` file: one `base64(token) rank` pair per line.
fn parse_tiktoken(text: &str) -> Result<Vec<(Vec<u8>, u32)>, String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut tokens = Vec::with_capacity(text.len() / 12);
    for (line_no, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let (b64, rank) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {}: expected `<base64> <rank>`", line_no + 1))?;
        let bytes = engine
            .decode(b64)
            .map_err(|e| format!("line {}: bad base64: {e}", line_no + 1))?;
        let rank = rank
            .trim()
            .parse()
            .map_err(|e| format!("line {}: bad rank: {e}", line_no + 1))?;
        tokens.push((bytes, rank));
    }
    Ok(tokens)
}
