//! The streaming loop every JSONL batch shares: input lines, per-line errors,
//! and parallel, input-ordered processing.
//!
//! Lines are read in chunks, each chunk is processed in parallel with rayon, and
//! its results are written in input order before the next chunk is read: every
//! core stays busy, the output order is the input order, and memory is bounded by
//! the chunk however large the input is.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bytes per chunk (whole lines, so a chunk can be larger when one line is):
/// large enough to keep every core busy, small enough that memory stays flat.
const CHUNK_BYTES: usize = 16 << 20;

/// Whole input lines, back to back, and where each one ends.
#[derive(Default)]
struct Chunk {
    data: Vec<u8>,
    /// End of each line in `data`, past its `\n` (the last line may have none).
    ends: Vec<usize>,
}

impl Chunk {
    fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }
}

/// Why one request failed, with its CLOVA status code (the HTTP API's codes), as
/// written in a failed line's error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// The five-digit status code, such as `40001` (invalid parameter).
    pub code: &'static str,
    /// What is wrong, in plain words.
    pub message: String,
}

impl LineError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `40000` for malformed JSON, `40001` for a well-formed request with a bad
    /// field, in plain words ([`sluice_core::describe_json_error`]) for `input`,
    /// failing at the field `path`.
    pub fn json_in(input: &str, e: &serde_json::Error, path: &str) -> Self {
        let words = sluice_core::describe_json_error(input, e, path);
        if sluice_core::is_malformed_json(e) {
            Self {
                code: "40000",
                message: format!("malformed JSON: {words}"),
            }
        } else {
            Self {
                code: "40001",
                message: format!("invalid parameter: {words}"),
            }
        }
    }

    /// The output line for a request that failed: its `id` when it has one,
    /// always its 1-based input line number.
    pub fn into_line(self, id: Option<&Value>, line: usize) -> String {
        #[derive(Serialize)]
        struct Failed<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a Value>,
            line: usize,
            error: LineError,
        }
        serde_json::to_string(&Failed {
            id,
            line,
            error: self,
        })
        .expect("serializable")
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

impl std::error::Error for LineError {}

impl From<sluice_core::TrimError> for LineError {
    fn from(e: sluice_core::TrimError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<sluice_core::BuildError> for LineError {
    fn from(e: sluice_core::BuildError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<sluice_router::RouteError> for LineError {
    fn from(e: sluice_router::RouteError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

/// Why a batch stopped: its input could not be read or its output not written.
/// (A bad line never stops a batch; it gets an error line.)
#[derive(Debug)]
pub enum StreamError {
    /// Reading the input failed.
    Read(io::Error),
    /// Writing the output failed (a closed pipe is [`io::ErrorKind::BrokenPipe`]).
    Write(io::Error),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StreamError::Read(_) => "cannot read input",
            StreamError::Write(_) => "cannot write output",
        })
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Read(e) | StreamError::Write(e) => Some(e),
        }
    }
}

/// The `id` of a line that failed to parse as a request, if the line is at least
/// a JSON object with one, so that the error can still be matched to its input.
fn recover_id(line: &str) -> Option<Value> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<Value>,
    }
    serde_json::from_str::<IdOnly>(line).ok().and_then(|x| x.id)
}

/// One input line: its 1-based number and its text (an error when it is not
/// UTF-8). Blank lines never reach the per-line work.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    /// 1-based line number in the input.
    pub number: usize,
    /// The text without its line ending (and without a byte-order mark on line 1).
    pub text: Result<&'a str, LineError>,
}

/// Parses one JSON request, or says in plain words what is wrong with it:
/// `40000` for malformed JSON, `40001` naming the field that does not fit `R`.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Request {
///     #[allow(dead_code)]
///     query: String,
/// }
///
/// let err = sluice_pipeline::parse_json::<Request>(r#"{"query": 5}"#).err().unwrap();
/// assert_eq!(err.code, "40001");
/// assert!(err.message.starts_with("invalid parameter: query: expected a string"), "{err}");
/// ```
pub fn parse_json<R: serde::de::DeserializeOwned>(text: &str) -> Result<R, LineError> {
    serde_json::from_str(text).map_err(|_| {
        // The error path only: parse again to learn which field failed.
        let mut de = serde_json::Deserializer::from_str(text);
        let (error, path) = match serde_path_to_error::deserialize::<_, R>(&mut de) {
            Err(e) => {
                let path = e.path().to_string();
                (e.into_inner(), path)
            }
            Ok(_) => match de.end() {
                Err(e) => (e, String::new()),
                Ok(()) => unreachable!("the text failed to parse a moment ago"),
            },
        };
        LineError::json_in(text, &error, &path)
    })
}

/// Parses one batch line as a request, or returns the error line to write for it:
/// the line's own error (not UTF-8), or [`parse_json`]'s error with the line's
/// `id` when it has one and always its line number.
pub fn parse_line<R: serde::de::DeserializeOwned>(line: &Line<'_>) -> Result<R, String> {
    let text = match &line.text {
        Ok(text) => *text,
        Err(error) => return Err(error.clone().into_line(None, line.number)),
    };
    parse_json(text).map_err(|error| error.into_line(recover_id(text).as_ref(), line.number))
}

/// Streams JSONL from `reader` to `out`: `process` turns each line (without its
/// line ending; an `Err` for a line that is not UTF-8) into one output line and a
/// value that `tally` receives in input order; `progress` gets the bytes read so
/// far after each chunk. Blank lines are skipped (their numbers are kept) and a
/// byte-order mark on the first line is ignored. Returns the bytes read.
///
/// ```
/// let input = "{\"n\":1}\n\n{\"n\":2}\n";
/// let mut out = Vec::new();
/// let mut numbers = Vec::new();
/// let bytes = sluice_pipeline::stream(
///     input.as_bytes(),
///     &mut out,
///     |line| (line.text.unwrap().to_uppercase(), line.number),
///     |number| numbers.push(number),
///     |_bytes_read| {},
/// )?;
/// assert_eq!(out, b"{\"N\":1}\n{\"N\":2}\n");
/// assert_eq!((numbers, bytes), (vec![1, 3], input.len() as u64));
/// # Ok::<(), sluice_pipeline::StreamError>(())
/// ```
///
/// Performance notes:
/// - Reading, processing and writing overlap. A reader thread fills the next
///   chunk and a writer thread writes the previous chunk's output while rayon
///   processes the current one; with the three in lock step, the serial reading
///   and writing held two threads to 1.6x of one on a 1 GB file.
/// - The reader is the one serial stage that grows with the input, so it does as
///   little as it can: it reads 16 MiB at a time into a reused buffer and only
///   records where lines end (memchr). Reading each line into a buffer of its own
///   cost it ~9% of the workers' time (copies, allocations, page faults), which
///   would have capped the speed-up near 10x however many cores there are.
/// - Lines are checked for UTF-8 with `simdutf8` (vector instructions chosen at
///   run time): `std::str::from_utf8` took 6.5% of a worker's time on mostly
///   Korean text; the whole batch got ~9% faster on one thread.
pub fn stream<T: Send>(
    reader: impl Read + Send,
    out: impl Write + Send,
    process: impl Fn(Line<'_>) -> (String, T) + Sync,
    mut tally: impl FnMut(T),
    mut progress: impl FnMut(u64),
) -> Result<u64, StreamError> {
    // Chunks in flight: one being read, one processed, one written.
    let (chunk_tx, chunks) = mpsc::sync_channel::<io::Result<Chunk>>(0);
    let (output_tx, outputs) = mpsc::sync_channel::<Vec<String>>(0);
    let (spare_tx, spares) = mpsc::channel::<Chunk>();
    std::thread::scope(|scope| {
        scope.spawn(move || read_chunks(reader, CHUNK_BYTES, chunk_tx, spares));
        let writer = scope.spawn(move || write_outputs(out, outputs));
        let mut bytes = 0u64;
        let mut lines_before = 0usize;
        for chunk in chunks {
            let chunk = chunk.map_err(StreamError::Read)?;
            let results: Vec<Option<(String, T)>> = (0..chunk.ends.len())
                .into_par_iter()
                .map(|i| {
                    let number = lines_before + i + 1;
                    let text = match simdutf8::basic::from_utf8(chunk.line(i)) {
                        Ok(text) => {
                            let text = text.trim_end_matches(['\n', '\r']);
                            let text = if number == 1 {
                                sluice_core::strip_bom(text)
                            } else {
                                text
                            };
                            // A blank line (a trailing newline, a spacer) is no request.
                            if text.trim().is_empty() {
                                return None;
                            }
                            Ok(text)
                        }
                        Err(_) => Err(LineError::new(
                            "40000",
                            "malformed input: the line is not valid UTF-8",
                        )),
                    };
                    Some(process(Line { number, text }))
                })
                .collect();
            lines_before += chunk.ends.len();
            bytes += chunk.data.len() as u64;
            let _ = spare_tx.send(chunk);
            let mut texts = Vec::with_capacity(results.len());
            for (text, value) in results.into_iter().flatten() {
                texts.push(text);
                tally(value);
            }
            if output_tx.send(texts).is_err() {
                break; // the writer failed; its error is reported below
            }
            progress(bytes);
        }
        drop(output_tx);
        writer
            .join()
            .expect("writer thread")
            .map_err(StreamError::Write)?;
        Ok(bytes)
    })
}

/// Reads chunks of whole lines until the input ends, reusing the chunks sent
/// back. The partial line at the end of a read is carried into the next chunk.
fn read_chunks(
    mut reader: impl Read,
    chunk_bytes: usize,
    chunks: mpsc::SyncSender<io::Result<Chunk>>,
    spares: mpsc::Receiver<Chunk>,
) {
    let mut carry = Vec::new();
    loop {
        let mut chunk = spares.try_recv().unwrap_or_default();
        chunk.data.clear();
        chunk.ends.clear();
        chunk.data.extend_from_slice(&carry);
        carry.clear();
        let eof = match fill(&mut reader, &mut chunk.data, chunk_bytes) {
            Ok(eof) => eof,
            Err(e) => {
                let _ = chunks.send(Err(e));
                return;
            }
        };
        let complete = if eof {
            chunk.data.len()
        } else {
            memchr::memrchr(b'\n', &chunk.data).map_or(0, |i| i + 1)
        };
        carry.extend_from_slice(&chunk.data[complete..]);
        chunk.data.truncate(complete);
        chunk
            .ends
            .extend(memchr::memchr_iter(b'\n', &chunk.data).map(|i| i + 1));
        if chunk.ends.last() != Some(&chunk.data.len()) && !chunk.data.is_empty() {
            chunk.ends.push(chunk.data.len()); // the last line, with no line ending
        }
        if chunk.ends.is_empty() || chunks.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// Reads into `data` until it holds `chunk_bytes` and at least one line ending, or
/// the input ends (then returns `true`). `data` starts with no line ending.
fn fill(reader: &mut impl Read, data: &mut Vec<u8>, chunk_bytes: usize) -> io::Result<bool> {
    let mut scanned = data.len();
    let mut has_newline = false;
    loop {
        let want = chunk_bytes
            .saturating_sub(data.len())
            .max(chunk_bytes / 16)
            .max(1);
        if reader.take(want as u64).read_to_end(data)? == 0 {
            return Ok(true);
        }
        if !has_newline {
            has_newline = memchr::memchr(b'\n', &data[scanned..]).is_some();
            scanned = data.len();
        }
        if has_newline && data.len() >= chunk_bytes {
            return Ok(false);
        }
    }
}

/// Writes each chunk's output lines, in order.
fn write_outputs(mut out: impl Write, outputs: mpsc::Receiver<Vec<String>>) -> io::Result<()> {
    for texts in outputs {
        for text in texts {
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines `read_chunks` hands out, chunk by chunk, for `input`.
    fn chunked(input: &[u8], chunk_bytes: usize) -> Vec<Vec<Vec<u8>>> {
        let (tx, rx) = mpsc::sync_channel(0);
        let (_spare_tx, spares) = mpsc::channel();
        let input = input.to_vec();
        let reader = std::thread::spawn(move || read_chunks(&input[..], chunk_bytes, tx, spares));
        let chunks = rx
            .into_iter()
            .map(|c| {
                let c = c.unwrap();
                (0..c.ends.len()).map(|i| c.line(i).to_vec()).collect()
            })
            .collect();
        reader.join().unwrap();
        chunks
    }

    #[test]
    fn chunks_hold_whole_lines_in_order_whatever_the_chunk_size() {
        let inputs: [&[u8]; 6] = [
            b"",
            b"one",
            b"one\ntwo\n",
            b"\n\n\nlast without newline",
            b"crlf\r\nlines\r\n\xff\xfe not utf-8\n",
            b"a line much longer than any chunk here, read in many pieces\nshort\nx",
        ];
        for input in inputs {
            let want: Vec<&[u8]> = input.split_inclusive(|&b| b == b'\n').collect();
            for chunk_bytes in [1, 2, 3, 7, 16, 1 << 20] {
                let chunks = chunked(input, chunk_bytes);
                assert!(chunks.iter().all(|c| !c.is_empty()), "{chunk_bytes}");
                let got: Vec<Vec<u8>> = chunks.into_iter().flatten().collect();
                assert_eq!(
                    got,
                    want,
                    "{:?} in chunks of {chunk_bytes}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn stream_keeps_input_order_and_reports_bytes() {
        let input: String = (0..10_000).map(|i| format!("{i}\n")).collect();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let bytes = stream(
            input.as_bytes(),
            &mut out,
            |line| {
                let n: u64 = line.text.unwrap().parse().unwrap();
                assert_eq!(line.number as u64, n + 1, "line numbers count from 1");
                ((n * 2).to_string(), n)
            },
            |n| seen.push(n),
            |_| {},
        )
        .unwrap();
        assert_eq!(bytes, input.len() as u64);
        assert_eq!(seen, (0..10_000).collect::<Vec<_>>());
        let doubled: String = (0..10_000).map(|i| format!("{}\n", i * 2)).collect();
        assert_eq!(String::from_utf8(out).unwrap(), doubled);
    }

    #[test]
    fn blank_lines_are_skipped_and_numbers_kept() {
        let input = "\u{feff}a\n\n  \nb\r\n\nc\n\n";
        let mut out = Vec::new();
        let mut seen = Vec::new();
        stream(
            input.as_bytes(),
            &mut out,
            |line| (format!("{}:{}", line.number, line.text.unwrap()), ()),
            |()| seen.push(()),
            |_| {},
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "1:a\n4:b\n6:c\n");
        assert_eq!(seen.len(), 3);
    }
}
