//! Re-quantizing a file's weights once, at load, to Q8_0, cached on disk
//! beside the models: an option ([`LoadOptions::requantize_q8_0`](crate::LoadOptions)),
//! off by default, kept to compare formats.
//!
//! Why it was written: with llama.cpp as the engine, whose x86 kernels for
//! Q4_1 were its slow ones, Q8_0 doubled the prompt rate at the file's
//! quality. Measured then with llama.cpp's own `llama-bench` and
//! `llama-perplexity` (2026-12-07, load ~1.5; perplexity of the Apache
//! License text, 512-token windows) on the file re-quantized by
//! `llama-quantize --allow-requantize`:
//!
//! | weights | prompt t/s, 1 / 2 threads | generation t/s, 1 / 2 | perplexity | MiB |
//! |---|---:|---:|---:|---:|
//! | f32 (the Q4_1 weights, exact) | | | 15.78 | 513 |
//! | Q4_1, the file | 237 / 469 | 123 / 143 | 15.85 (+0.5%) | 92 |
//! | Q8_0 | 505 / 981 | 139 / 153 | 15.90 (+0.8%) | 136 |
//! | Q4_0 (repacked 8x8) | 916 / 1706 | 179 / 197 | 18.79 (+19%) | 86 |
//! | IQ4_NL | 847 / 1623 | 167 / 204 | 18.85 (+19%) | 86 |
//! | Q5_0 | 415 / 811 | 138 / 155 | 17.05 (+8%) | 98 |
//! | Q5_1 | 221 / 448 | 134 / 163 | 17.61 (+12%) | 105 |
//!
//! Q8_0 holds every Q4_1 weight to within 1/254 of its block's largest, so
//! it keeps the file's perplexity; the 4- and 5-bit formats with faster
//! llama.cpp kernels lose 8-19% on a model this small (K-quants do not apply:
//! most of SmolLM2's rows have 576 weights, not a multiple of 256). With
//! sluice's own kernels (`kernel.rs`), which multiply Q4_1 as fast as Q8_0
//! per weight, Q8_0 only reads more bytes: it is slower than the file's Q4_1
//! (BENCHMARKS.md, "Local model"), hence off.
//!
//! Only Q4_1 files are converted; any other file runs as it is. The
//! conversion is written here rather than called from llama.cpp's quantizer
//! (`llama_model_quantize`, a C library): per block of 32 it is ggml's own arithmetic
//! (`dequantize_row_q4_1`, then `quantize_row_q8_0_ref`: `d = max|w| / 127`,
//! `q = round(w / d)`), so the copy is byte for byte what `llama-quantize
//! --allow-requantize ... Q8_0` writes for these tensors (a test checks the
//! arithmetic on blocks with known answers). It streams tensor by tensor
//! (about 0.3 s for SmolLM2, little memory), writes under a temporary name
//! and renames, and names the copy after the source's size and modification
//! time, so an edited source is converted again.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use half::f16;

use crate::LocalError;
use crate::gguf::{Layout, Metadata, TensorInfo};
use crate::kernel::{GGML_Q4_1, GGML_Q8_0, tensor_bytes};

/// `general.file_type` of a mostly-Q4_1 file (llama.cpp's
/// `LLAMA_FTYPE_MOSTLY_Q4_1`), and of a mostly-Q8_0 one.
const MOSTLY_Q4_1: u32 = 3;
const MOSTLY_Q8_0: u32 = 7;

/// GGML tensor types: Q4_1 blocks (f16 scale, f16 minimum, 16 bytes of
/// nibbles: 20 bytes per 32 weights) and Q8_0 blocks (f16 scale, 32 signed
/// bytes: 34 bytes per 32 weights).
const BLOCK: usize = 32;
const Q4_1_BYTES: usize = 20;
const Q8_0_BYTES: usize = 34;

/// The Q8_0 copy of `path` when it is a Q4_1 file (made now if it is not
/// cached yet); `path` itself otherwise.
pub(crate) fn runnable(path: &Path, meta: &Metadata) -> Result<PathBuf, LocalError> {
    let file_type = meta.get("general.file_type").and_then(|v| v.as_i64());
    if file_type != Some(i64::from(MOSTLY_Q4_1)) {
        return Ok(path.to_path_buf());
    }
    let source = std::fs::metadata(path).map_err(|e| io(e, path))?;
    let modified = source
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let stem = path
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let name = format!("{stem}-{}-{modified}.Q8_0.gguf", source.len());
    let dir = cache_dir();
    let copy = dir.join(&name);
    if copy.is_file() {
        return Ok(copy);
    }
    std::fs::create_dir_all(&dir).map_err(|e| io(e, &dir))?;
    let partial = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let started = std::time::Instant::now();
    if let Err(error) = write_q8_0(path, &partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, &copy).map_err(|e| io(e, &copy))?;
    tracing::info!(
        source = %path.display(),
        copy = %copy.display(),
        seconds = started.elapsed().as_secs_f64(),
        "re-quantized the Q4_1 weights to Q8_0 (once; cached)"
    );
    // Copies of earlier versions of the same file are stale now.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let prefix = format!("{stem}-");
        for entry in entries.flatten() {
            let other = entry.file_name().to_string_lossy().into_owned();
            if other != name && other.starts_with(&prefix) && other.ends_with(".Q8_0.gguf") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(copy)
}

fn io(e: std::io::Error, at: &Path) -> LocalError {
    LocalError::Io {
        path: at.display().to_string(),
        message: e.to_string(),
    }
}

/// Where converted copies are kept: `converted/` in the model cache
/// ([`crate::fetch::model_dir`]), or the system's temporary directory when
/// there is no cache.
fn cache_dir() -> PathBuf {
    crate::fetch::model_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("sluice-models"))
        .join("converted")
}

/// Writes `from` with its Q4_1 tensors as Q8_0 (every other tensor copied)
/// to `to`.
fn write_q8_0(from: &Path, to: &Path) -> Result<(), LocalError> {
    let bad = |message: String| LocalError::Model {
        message: format!("{}: {message}", from.display()),
    };
    let mut reader = BufReader::new(File::open(from).map_err(|e| io(e, from))?);
    let layout = Layout::read(&mut reader).map_err(bad)?;
    let mut header = vec![0; usize::try_from(layout.metadata_end).map_err(|e| bad(e.to_string()))?];
    reader.seek(SeekFrom::Start(0)).map_err(|e| io(e, from))?;
    reader.read_exact(&mut header).map_err(|e| io(e, from))?;
    set_file_type(&mut header, MOSTLY_Q8_0).ok_or_else(|| bad("no general.file_type".into()))?;

    // The new table: the same tensors, Q4_1 ones as Q8_0, laid out again.
    let align = layout.alignment;
    let mut table = Vec::new();
    let mut offset = 0u64;
    for tensor in &layout.tensors {
        let ty = if tensor.ty == GGML_Q4_1 {
            GGML_Q8_0
        } else {
            tensor.ty
        };
        TensorInfo {
            ty,
            offset,
            ..tensor.clone()
        }
        .write_entry(&mut table);
        offset = (offset
            + tensor_bytes(ty, tensor.elements())
                .ok_or_else(|| bad(format!("tensor {:?}", tensor.name)))?)
        .next_multiple_of(align);
    }

    let mut out = BufWriter::new(File::create(to).map_err(|e| io(e, to))?);
    let written = (|| -> std::io::Result<()> {
        out.write_all(&header)?;
        out.write_all(&table)?;
        let mut at = (header.len() + table.len()) as u64;
        pad(&mut out, &mut at, align)?;
        for tensor in &layout.tensors {
            reader.seek(SeekFrom::Start(layout.data_start + tensor.offset))?;
            let size = tensor_bytes(tensor.ty, tensor.elements())
                .expect("sized when the table was written");
            if tensor.ty == GGML_Q4_1 {
                let mut q4 = [0u8; Q4_1_BYTES];
                for _ in 0..size / Q4_1_BYTES as u64 {
                    reader.read_exact(&mut q4)?;
                    out.write_all(&q4_1_to_q8_0(&q4))?;
                }
                at += size / Q4_1_BYTES as u64 * Q8_0_BYTES as u64;
            } else {
                std::io::copy(&mut (&mut reader).take(size), &mut out)?;
                at += size;
            }
            pad(&mut out, &mut at, align)?;
        }
        out.flush()?;
        out.get_ref().sync_all()
    })();
    written.map_err(|e| io(e, to))
}

/// Zeros up to the next multiple of `align`.
fn pad(out: &mut impl Write, at: &mut u64, align: u64) -> std::io::Result<()> {
    let to = at.next_multiple_of(align);
    out.write_all(&vec![0; (to - *at) as usize])?;
    *at = to;
    Ok(())
}

/// One Q4_1 block as a Q8_0 block, with ggml's arithmetic: the 32 weights
/// `d * q + m` (low nibbles are weights 0-15, high nibbles 16-31), then
/// `quantize_row_q8_0_ref`.
fn q4_1_to_q8_0(block: &[u8; Q4_1_BYTES]) -> [u8; Q8_0_BYTES] {
    let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
    let m = f16::from_le_bytes([block[2], block[3]]).to_f32();
    let mut w = [0f32; BLOCK];
    for (j, &q) in block[4..].iter().enumerate() {
        w[j] = f32::from(q & 0x0F) * d + m;
        w[j + 16] = f32::from(q >> 4) * d + m;
    }
    quantize_q8_0(&w)
}

/// ggml's `quantize_row_q8_0_ref` for one block.
fn quantize_q8_0(w: &[f32; BLOCK]) -> [u8; Q8_0_BYTES] {
    let amax = w.iter().fold(0f32, |a, &x| a.max(x.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut out = [0u8; Q8_0_BYTES];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (o, &x) in out[2..].iter_mut().zip(w) {
        // `round` rounds half away from zero, as C's `roundf`.
        *o = (x * id).round() as i8 as u8;
    }
    out
}

/// Sets the `general.file_type` value (a `u32`) in a GGUF header; `None`
/// when the header has no such key.
fn set_file_type(header: &mut [u8], file_type: u32) -> Option<()> {
    const KEY: &[u8] = b"general.file_type";
    let mut pattern = (KEY.len() as u64).to_le_bytes().to_vec();
    pattern.extend(KEY);
    pattern.extend(4u32.to_le_bytes()); // GGUF's u32 value type
    let at = header.windows(pattern.len()).position(|w| w == pattern)? + pattern.len();
    header
        .get_mut(at..at + 4)?
        .copy_from_slice(&file_type.to_le_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q4_1(d: f32, m: f32, nibbles: [u8; BLOCK]) -> [u8; Q4_1_BYTES] {
        let mut block = [0u8; Q4_1_BYTES];
        block[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        block[2..4].copy_from_slice(&f16::from_f32(m).to_le_bytes());
        for j in 0..16 {
            block[4 + j] = nibbles[j] | (nibbles[j + 16] << 4);
        }
        block
    }

    fn q8_0_values(block: &[u8; Q8_0_BYTES]) -> Vec<f32> {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        block[2..].iter().map(|&q| f32::from(q as i8) * d).collect()
    }

    #[test]
    fn a_block_keeps_its_weights_to_within_half_a_step() {
        let nibbles: [u8; BLOCK] = std::array::from_fn(|i| (i * 7 % 16) as u8);
        let (d, m) = (0.0125, -0.1);
        let block = q4_1(d, m, nibbles);
        let out = q4_1_to_q8_0(&block);
        let d = f16::from_f32(d).to_f32();
        let m = f16::from_f32(m).to_f32();
        let step = f16::from_le_bytes([out[0], out[1]]).to_f32();
        // The largest magnitude (m + 15 d or m) is 127 steps.
        let amax = (m + 15.0 * d).abs().max(m.abs());
        assert!((step - amax / 127.0).abs() <= amax / 127.0 * 1e-3, "{step}");
        // Half a step of rounding, plus the scale's own rounding to f16
        // (2^-11 of it) over as many as 127 steps.
        let bound = step * (0.5 + 127.0 / 2048.0);
        for (j, got) in q8_0_values(&out).into_iter().enumerate() {
            let want = f32::from(nibbles[j]) * d + m;
            assert!(
                (got - want).abs() <= bound,
                "weight {j}: {got} against {want}"
            );
        }
    }

    #[test]
    fn blocks_with_known_answers() {
        // d = 1, m = -8: weights q - 8, from -8 to 7; the largest magnitude
        // is 8, so the step is 8/127 and -8 is exactly -127.
        let nibbles: [u8; BLOCK] = std::array::from_fn(|i| (i % 16) as u8);
        let out = q4_1_to_q8_0(&q4_1(1.0, -8.0, nibbles));
        assert_eq!(out[..2], f16::from_f32(8.0 / 127.0).to_le_bytes());
        let q: Vec<i8> = out[2..].iter().map(|&b| b as i8).collect();
        assert_eq!(q[0], -127);
        assert_eq!(q[8], 0);
        // 7 * 127 / 8 = 111.125
        assert_eq!(q[15], 111);
        assert_eq!(q[..16], q[16..]);
        // An all-zero block stays zero, with a zero scale.
        assert_eq!(q4_1_to_q8_0(&q4_1(0.0, 0.0, [0; BLOCK])), [0; Q8_0_BYTES]);
    }

    #[test]
    fn the_file_type_is_rewritten_in_place() {
        let mut header = b"GGUFxxxx".to_vec();
        header.extend(17u64.to_le_bytes());
        header.extend(b"general.file_type");
        header.extend(4u32.to_le_bytes());
        header.extend(MOSTLY_Q4_1.to_le_bytes());
        header.extend(b"rest");
        let len = header.len();
        set_file_type(&mut header, MOSTLY_Q8_0).unwrap();
        assert_eq!(header.len(), len);
        assert_eq!(header[len - 8..len - 4], MOSTLY_Q8_0.to_le_bytes());
        assert_eq!(set_file_type(&mut b"GGUF".to_vec(), 7), None);
    }
}
