//! The key/value metadata at the head of a GGUF file (the tokenizer's
//! vocabulary and merges, the context length), read without the tensors, and
//! the table of tensors that follows it ([`Layout`]).
//!
//! Written here (a hundred lines of a simple, versioned format) because the
//! tokenizer and the chat template must work without the inference engine
//! (the `engine` feature), and the crates that read GGUF either bring a whole
//! ML framework (candle, llama.cpp) or want the whole 98 MB file in memory;
//! the engine reads the tensors through [`Layout`] too.
//! Layout (GGUF v2 and v3, little-endian): magic `GGUF`, version `u32`, tensor
//! count `u64`, key/value count `u64`, then each key (a string: `u64` length
//! and UTF-8 bytes), its type (`u32`) and its value.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::LocalError;

/// One metadata value; integers of every width are widened.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `u8`, `u16`, `u32` or `u64`.
    Unsigned(u64),
    /// `i8`, `i16`, `i32` or `i64`.
    Signed(i64),
    /// `f32` or `f64`.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// An array of values of one type.
    Array(Vec<Value>),
}

impl Value {
    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if it is one that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Unsigned(n) => i64::try_from(n).ok(),
            Value::Signed(n) => Some(n),
            _ => None,
        }
    }

    /// The array's items, if it is one.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// A GGUF file's metadata, by key.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Every key and its value.
    pub values: HashMap<String, Value>,
    /// How many tensors the file says it has.
    pub tensors: u64,
}

/// Limits that keep a corrupt header from asking for absurd allocations.
const MAX_STRING: u64 = 1 << 24;
const MAX_ITEMS: u64 = 1 << 24;

impl Metadata {
    /// Reads the metadata of the GGUF file at `path`.
    pub fn read_file(path: &Path) -> Result<Self, LocalError> {
        let file = std::fs::File::open(path).map_err(|e| LocalError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::read(&mut BufReader::new(file)).map_err(|message| LocalError::Model {
            message: format!("{}: {message}", path.display()),
        })
    }

    /// Reads the metadata from the start of a GGUF stream.
    pub fn read(reader: &mut impl Read) -> Result<Self, String> {
        let mut r = Reader(reader);
        if r.bytes(4)? != b"GGUF" {
            return Err("not a GGUF file (no GGUF magic)".into());
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(format!("GGUF version {version} is not supported (2 or 3)"));
        }
        let tensors = r.u64()?;
        let count = r.u64()?;
        let mut values = HashMap::new();
        for _ in 0..count {
            let key = r.string()?;
            let ty = r.u32()?;
            values.insert(key, r.value(ty)?);
        }
        Ok(Self { values, tensors })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }
}

/// One tensor of a GGUF file: its name, shape, GGML type, and where its
/// data starts, relative to the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Its dimensions, innermost (the row length) first.
    pub dims: Vec<u64>,
    /// Its GGML type (`0` f32, `3` Q4_1, `8` Q8_0, ...).
    pub ty: u32,
    /// Its offset in the data section, in bytes.
    pub offset: u64,
}

impl TensorInfo {
    /// How many values it holds.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Appends its entry in a GGUF tensor table (name, dimensions, type,
    /// offset) to `table`.
    pub fn write_entry(&self, table: &mut Vec<u8>) {
        table.extend((self.name.len() as u64).to_le_bytes());
        table.extend(self.name.as_bytes());
        table.extend((self.dims.len() as u32).to_le_bytes());
        for d in &self.dims {
            table.extend(d.to_le_bytes());
        }
        table.extend(self.ty.to_le_bytes());
        table.extend(self.offset.to_le_bytes());
    }
}

/// Where everything is in a GGUF file: the metadata, the byte range it
/// takes, the tensor table, and where the tensors' data starts.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The metadata.
    pub metadata: Metadata,
    /// The byte offset just after the metadata (where the tensor table starts).
    pub metadata_end: u64,
    /// The tensor table, in file order.
    pub tensors: Vec<TensorInfo>,
    /// The alignment of the data section and of each tensor in it.
    pub alignment: u64,
    /// The byte offset of the data section.
    pub data_start: u64,
}

impl Layout {
    /// Reads the metadata and the tensor table from the start of a GGUF
    /// stream; the stream is left at the end of the table.
    pub fn read(reader: &mut impl Read) -> Result<Self, String> {
        let mut counted = Counted {
            inner: reader,
            read: 0,
        };
        let metadata = Metadata::read(&mut counted)?;
        let metadata_end = counted.read;
        // Metadata::read checked the magic; the count is at bytes 8-16.
        let count = metadata.tensors;
        if count > MAX_ITEMS {
            return Err(format!("{count} tensors"));
        }
        let mut r = Reader(&mut counted);
        let mut tensors = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims > 4 {
                return Err(format!("tensor {name:?} has {n_dims} dimensions"));
            }
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Result<_, _>>()?;
            let ty = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
            });
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(Value::as_i64)
            .and_then(|a| u64::try_from(a).ok())
            .filter(|a| a.is_power_of_two())
            .unwrap_or(32);
        let data_start = counted.read.next_multiple_of(alignment);
        Ok(Self {
            metadata,
            metadata_end,
            tensors,
            alignment,
            data_start,
        })
    }
}

/// A reader that counts the bytes read through it.
struct Counted<'a, R: Read> {
    inner: &'a mut R,
    read: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

struct Reader<'a, R: Read>(&'a mut R);

impl<R: Read> Reader<'_, R> {
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0; n];
        self.0
            .read_exact(&mut buf)
            .map_err(|e| format!("truncated metadata: {e}"))?;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut buf = [0; N];
        self.0
            .read_exact(&mut buf)
            .map_err(|e| format!("truncated metadata: {e}"))?;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(format!("a string of {len} bytes"));
        }
        String::from_utf8(self.bytes(len as usize)?).map_err(|e| format!("a string: {e}"))
    }

    fn value(&mut self, ty: u32) -> Result<Value, String> {
        Ok(match ty {
            0 => Value::Unsigned(u8::from_le_bytes(self.array()?).into()),
            1 => Value::Signed(i8::from_le_bytes(self.array()?).into()),
            2 => Value::Unsigned(u16::from_le_bytes(self.array()?).into()),
            3 => Value::Signed(i16::from_le_bytes(self.array()?).into()),
            4 => Value::Unsigned(self.u32()?.into()),
            5 => Value::Signed(i32::from_le_bytes(self.array()?).into()),
            6 => Value::Float(f32::from_le_bytes(self.array()?).into()),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                let item = self.u32()?;
                let len = self.u64()?;
                if len > MAX_ITEMS || item == 9 {
                    return Err(format!("an array of {len} items of type {item}"));
                }
                let items = (0..len)
                    .map(|_| self.value(item))
                    .collect::<Result<_, _>>()?;
                Value::Array(items)
            }
            10 => Value::Unsigned(self.u64()?),
            11 => Value::Signed(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(format!("unknown metadata type {other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u64).to_le_bytes().to_vec();
        out.extend(s.as_bytes());
        out
    }

    #[test]
    fn reads_strings_integers_and_arrays() {
        let mut file = b"GGUF".to_vec();
        file.extend(3u32.to_le_bytes());
        file.extend(0u64.to_le_bytes());
        file.extend(3u64.to_le_bytes());
        file.extend(string("general.architecture"));
        file.extend(8u32.to_le_bytes());
        file.extend(string("llama"));
        file.extend(string("llama.context_length"));
        file.extend(4u32.to_le_bytes());
        file.extend(8192u32.to_le_bytes());
        file.extend(string("tokenizer.ggml.token_type"));
        file.extend(9u32.to_le_bytes());
        file.extend(5u32.to_le_bytes());
        file.extend(2u64.to_le_bytes());
        file.extend(1i32.to_le_bytes());
        file.extend((-3i32).to_le_bytes());
        let meta = Metadata::read(&mut file.as_slice()).unwrap();
        assert_eq!(
            meta.get("general.architecture").unwrap().as_str(),
            Some("llama")
        );
        assert_eq!(
            meta.get("llama.context_length").unwrap().as_i64(),
            Some(8192)
        );
        let types: Vec<i64> = meta
            .get("tokenizer.ggml.token_type")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(types, [1, -3]);
    }

    #[test]
    fn the_layout_reads_the_tensor_table_it_writes() {
        let tensors = [
            TensorInfo {
                name: "token_embd.weight".into(),
                dims: vec![576, 49152],
                ty: 8,
                offset: 0,
            },
            TensorInfo {
                name: "output_norm.weight".into(),
                dims: vec![576],
                ty: 0,
                offset: 30_081_024,
            },
        ];
        let mut file = b"GGUF".to_vec();
        file.extend(3u32.to_le_bytes());
        file.extend((tensors.len() as u64).to_le_bytes());
        file.extend(1u64.to_le_bytes());
        file.extend(string("general.alignment"));
        file.extend(4u32.to_le_bytes());
        file.extend(64u32.to_le_bytes());
        let metadata_end = file.len() as u64;
        for tensor in &tensors {
            tensor.write_entry(&mut file);
        }
        let table_end = file.len() as u64;
        file.extend([7; 100]);
        let mut reader = file.as_slice();
        let layout = Layout::read(&mut reader).unwrap();
        assert_eq!(layout.metadata.tensors, 2);
        assert_eq!(layout.metadata_end, metadata_end);
        assert_eq!(layout.tensors, tensors);
        assert_eq!(layout.tensors[0].elements(), 576 * 49152);
        assert_eq!(layout.alignment, 64);
        assert_eq!(layout.data_start, table_end.next_multiple_of(64));
        // The stream is left at the end of the table.
        assert_eq!(reader.len(), 100);
    }

    #[test]
    fn refuses_what_is_not_gguf_or_is_cut_short() {
        assert!(
            Metadata::read(&mut &b"GGML\x03\0\0\0"[..])
                .unwrap_err()
                .contains("magic")
        );
        let mut cut = b"GGUF".to_vec();
        cut.extend(3u32.to_le_bytes());
        cut.extend(0u64.to_le_bytes());
        cut.extend(1u64.to_le_bytes());
        cut.extend(string("k"));
        assert!(
            Metadata::read(&mut cut.as_slice())
                .unwrap_err()
                .contains("truncated")
        );
    }
}
