//! Quality stays: the perplexity of the weights the engine runs (the file's
//! Q4_1 blocks, and the same re-quantized to Q8_0 at load, multiplied by
//! sluice's quantized kernels against 8-bit activations) against the
//! file's own weights dequantized to `f32` exactly (written here as an `f32`
//! GGUF, run by the same engine's `f32` kernels), on a fixed English text of
//! a few thousand tokens.

use std::io::Cursor;
use std::path::Path;

use sluice_local::gguf::{Layout, TensorInfo};
use sluice_local::{LoadOptions, LocalModel};

use crate::support::model_path;

/// A fixed English text: the Apache License 2.0, as this crate ships it.
const TEXT: &str = include_str!("../LICENSE-APACHE");

const F32: u32 = 0;
const Q4_1: u32 = 3;
const Q8_0: u32 = 8;

fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `count` values of a tensor of GGML type `ty` starting at `data`, as `f32`.
fn dequantize(ty: u32, data: &[u8], count: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(count);
    match ty {
        F32 => out.extend(
            data[..count * 4]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
        ),
        // 32 weights: f16 scale d, f16 minimum m, 16 bytes of nibbles (low
        // nibbles are weights 0-15, high nibbles 16-31): w = d * q + m.
        Q4_1 => {
            for block in data[..count / 32 * 20].chunks_exact(20) {
                let (d, m) = (f16_at(block, 0), f16_at(block, 2));
                let qs = &block[4..20];
                out.extend(qs.iter().map(|q| d * f32::from(q & 0x0F) + m));
                out.extend(qs.iter().map(|q| d * f32::from(q >> 4) + m));
            }
        }
        // 32 weights: f16 scale d, 32 signed bytes: w = d * q.
        Q8_0 => {
            for block in data[..count / 32 * 34].chunks_exact(34) {
                let d = f16_at(block, 0);
                out.extend(block[2..34].iter().map(|&q| d * f32::from(q as i8)));
            }
        }
        other => panic!("GGML type {other} is not in the SmolLM2 Q4_1 file"),
    }
    out
}

/// The GGUF at `from` with every tensor dequantized to `f32`, written to `to`.
fn write_f32_copy(from: &Path, to: &Path) {
    let file = std::fs::read(from).unwrap();
    let layout = Layout::read(&mut Cursor::new(&file[..])).unwrap();
    let alignment = layout.alignment as usize;
    let mut header = file[..layout.metadata_end as usize].to_vec();
    let mut data = vec![];
    for tensor in &layout.tensors {
        TensorInfo {
            ty: F32,
            offset: data.len() as u64,
            ..tensor.clone()
        }
        .write_entry(&mut header);
        let at = (layout.data_start + tensor.offset) as usize;
        for w in dequantize(tensor.ty, &file[at..], tensor.elements() as usize) {
            data.extend(w.to_le_bytes());
        }
        data.resize(data.len().next_multiple_of(alignment), 0);
    }
    header.resize(header.len().next_multiple_of(alignment), 0);
    header.extend(data);
    std::fs::write(to, header).unwrap();
}

#[test]
fn quantized_perplexity_is_within_three_percent_of_f32() {
    let Some(path) = model_path() else { return };
    let dir = std::env::temp_dir().join(format!("sluice-local-f32-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f32_path = dir.join("SmolLM2-135M-Instruct.F32.gguf");
    write_f32_copy(&path, &f32_path);
    let perplexity = |path: &Path, requantize_q8_0| {
        let options = LoadOptions {
            requantize_q8_0,
            ..LoadOptions::default()
        };
        let model = LocalModel::load_with(path, options).unwrap();
        (
            model.perplexity(TEXT).unwrap(),
            model.tokenizer().encode(TEXT).len(),
        )
    };
    let (f, tokens) = perplexity(&f32_path, false);
    let _ = std::fs::remove_dir_all(&dir);
    let (q4_1, _) = perplexity(&path, false);
    let (q8_0, _) = perplexity(&path, true);
    assert!(tokens > 2_000, "the text has {tokens} tokens");
    let change = |q: f64| (q / f - 1.0) * 100.0;
    eprintln!(
        "perplexity on {tokens} tokens: f32 {f:.3}, Q4_1 {q4_1:.3} ({:+.2}%), Q8_0 from Q4_1 {q8_0:.3} ({:+.2}%)",
        change(q4_1),
        change(q8_0)
    );
    // A sane model on plain English (a broken kernel gives hundreds or more).
    assert!(f > 1.0 && f < 30.0, "f32 perplexity {f}");
    assert!(
        (q4_1 / f - 1.0).abs() <= 0.03,
        "Q4_1 {q4_1} against f32 {f}"
    );
    assert!(
        (q8_0 / f - 1.0).abs() <= 0.03,
        "Q8_0 {q8_0} against f32 {f}"
    );
    // The copy really is another format: its numbers are not the file's.
    assert_ne!(q8_0, q4_1);
}
