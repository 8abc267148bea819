//! The model's tokenizer, built from the GGUF file's own vocabulary and merges.
//!
//! SmolLM2 uses a GPT-2 style byte-level BPE (`tokenizer.ggml.model = "gpt2"`,
//! `tokenizer.ggml.pre = "smollm"`): every digit is a piece of its own, the rest
//! of the text is split by GPT-2's pattern, each piece's bytes start as one
//! symbol per byte, and adjacent symbols are merged by the rank of the *pair* in
//! the merges list (lowest rank first, leftmost on ties) until no pair is a
//! merge. That is exactly what the `tokenizers` crate does with the equivalent
//! `tokenizer.json` (`Digits(individual_digits)` then `ByteLevel`, BPE without
//! `ignore_merges`); a test checks it id for id on a corpus.
//!
//! Written here rather than reusing sluice-core's BPE because that one is
//! tiktoken's algorithm (merge by the rank of the concatenated bytes, whole
//! pieces taken as is) over the cl100k/o200k split patterns, and a GGUF's merges
//! are ranked by pair: the two agree on most text but not on all of it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use fancy_regex::Regex;

use crate::LocalError;
use crate::gguf::Metadata;

/// GPT-2's split pattern, as the `tokenizers` crate's `ByteLevel` pre-tokenizer
/// and llama.cpp's `smollm` pre-tokenizer use it.
const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// GGUF `tokenizer.ggml.token_type` of a control token (`<|im_start|>`, ...).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF `tokenizer.ggml.token_type` of a user-defined token.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// GPT-2's reversible mapping from bytes to printable characters: how the
/// vocabulary spells each byte.
pub(crate) fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[usize::from(b)] = if printable {
            char::from(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("a valid code point")
        };
    }
    table
}

/// One merge rule: the pair's rank in the merges list and the merged token.
#[derive(Debug, Clone, Copy)]
struct Merge {
    rank: u32,
    merged: u32,
}

/// A byte-level BPE tokenizer read from a GGUF file.
#[derive(Debug)]
pub struct GgufTokenizer {
    /// Each token's bytes, by id.
    bytes: Vec<Vec<u8>>,
    /// The token of each single byte.
    byte_ids: [u32; 256],
    /// Merge rules by the pair of ids they join.
    merges: HashMap<(u32, u32), Merge>,
    /// Control and user-defined tokens with their text, longest first (so the
    /// leftmost-longest match wins, as in `tokenizers`' added-token split).
    specials: Vec<(String, u32)>,
    /// Ids that end a generation: the end-of-sequence token and `<|endoftext|>`.
    stop_ids: Vec<u32>,
    pattern: Regex,
}

impl GgufTokenizer {
    /// Builds the tokenizer from the GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_gguf(meta: &Metadata) -> Result<Self, LocalError> {
        let model = metadata(meta, "tokenizer.ggml.model")?
            .as_str()
            .ok_or_else(|| bad("tokenizer.ggml.model", "not a string"))?;
        if model != "gpt2" {
            return Err(LocalError::Tokenizer(format!(
                "tokenizer.ggml.model is {model:?}; only the byte-level BPE \"gpt2\" is supported"
            )));
        }
        let tokens = strings(meta, "tokenizer.ggml.tokens")?;
        let merges = strings(meta, "tokenizer.ggml.merges")?;
        let types: Vec<i32> = match meta.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .as_array()
                .ok_or_else(|| bad("tokenizer.ggml.token_type", "not an array"))?
                .iter()
                .map(|t| {
                    t.as_i64()
                        .and_then(|t| i32::try_from(t).ok())
                        .ok_or_else(|| bad("tokenizer.ggml.token_type", "not an i32"))
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let id = |key: &str| {
            meta.get(key)
                .map(|v| {
                    v.as_i64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| bad(key, "not a u32"))
                })
                .transpose()
        };
        let eos = id("tokenizer.ggml.eos_token_id")?;
        let unknown = id("tokenizer.ggml.unknown_token_id")?;
        Self::new(&tokens, &merges, &types, eos, unknown)
    }

    /// Builds the tokenizer from a vocabulary in GPT-2's byte alphabet, its
    /// merges (`"a b"`), the GGUF token types, the end-of-sequence id and the
    /// unknown token's id.
    fn new(
        tokens: &[String],
        merges: &[String],
        types: &[i32],
        eos: Option<u32>,
        unknown: Option<u32>,
    ) -> Result<Self, LocalError> {
        let mut char_to_byte = HashMap::with_capacity(256);
        for (b, c) in byte_to_char().into_iter().enumerate() {
            char_to_byte.insert(c, b as u8);
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut bytes = Vec::with_capacity(tokens.len());
        let mut specials = Vec::new();
        for (id, token) in tokens.iter().enumerate() {
            let id = u32::try_from(id)
                .map_err(|_| LocalError::Tokenizer("more than 2^32 tokens".into()))?;
            ids.insert(token.as_str(), id);
            let kind = types.get(id as usize).copied().unwrap_or(1);
            if matches!(kind, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED) {
                specials.push((token.clone(), id));
                bytes.push(token.as_bytes().to_vec());
            } else {
                let decoded: Option<Vec<u8>> = token
                    .chars()
                    .map(|c| char_to_byte.get(&c).copied())
                    .collect();
                // A token outside the byte alphabet can never come out of a
                // merge; it decodes as its own text.
                bytes.push(decoded.unwrap_or_else(|| token.as_bytes().to_vec()));
            }
        }
        // A vocabulary may lack a few bytes (SmolLM2 has no token for some
        // control characters and bytes that never occur in UTF-8); like
        // `tokenizers` with `unk_token`, such a byte becomes the unknown token.
        let mut byte_ids = [0u32; 256];
        for (b, c) in byte_to_char().into_iter().enumerate() {
            byte_ids[b] = ids
                .get(c.to_string().as_str())
                .copied()
                .or(unknown)
                .ok_or_else(|| {
                    LocalError::Tokenizer(format!(
                        "the vocabulary has no token for byte {b:#04x} and no unknown token"
                    ))
                })?;
        }
        let mut rules = HashMap::with_capacity(merges.len());
        for (rank, merge) in merges.iter().enumerate() {
            let (left, right) = merge
                .split_once(' ')
                .ok_or_else(|| LocalError::Tokenizer(format!("merge {merge:?} is not a pair")))?;
            let id = |s: &str| {
                ids.get(s).copied().ok_or_else(|| {
                    LocalError::Tokenizer(format!(
                        "merge {merge:?}: {s:?} is not in the vocabulary"
                    ))
                })
            };
            let merged = id(&format!("{left}{right}"))?;
            let rank = u32::try_from(rank)
                .map_err(|_| LocalError::Tokenizer("more than 2^32 merges".into()))?;
            // The first rule for a pair wins, as in `tokenizers`.
            rules
                .entry((id(left)?, id(right)?))
                .or_insert(Merge { rank, merged });
        }
        specials.sort_by_key(|(text, _)| Reverse(text.len()));
        let mut stop_ids: Vec<u32> = eos.into_iter().collect();
        stop_ids.extend(ids.get("<|endoftext|>").copied());
        stop_ids.dedup();
        let pattern = Regex::new(GPT2_PATTERN).expect("GPT-2's pattern compiles");
        Ok(Self {
            bytes,
            byte_ids,
            merges: rules,
            specials,
            stop_ids,
            pattern,
        })
    }

    /// The number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    /// Encodes `text` as ordinary text: a special token's spelling inside it is
    /// split like any other characters, so message content cannot forge the
    /// chat template's markers.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encode_into(text, &mut out);
        out
    }

    /// Encodes `text` with the special tokens it spells (`<|im_start|>`, ...)
    /// taken as their ids, like `tokenizers`' default: the leftmost, then the
    /// longest, special token wins.
    pub fn encode_with_special_tokens(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        let mut rest = text;
        while !rest.is_empty() {
            let found = self
                .specials
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, Reverse(s.len()), *id)))
                .min();
            match found {
                Some((at, Reverse(len), id)) => {
                    self.encode_into(&rest[..at], &mut out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_into(rest, &mut out);
                    rest = "";
                }
            }
        }
        out
    }

    /// The id of a special token, such as `<|im_start|>`.
    pub fn special_token_id(&self, token: &str) -> Option<u32> {
        self.specials
            .iter()
            .find_map(|(s, id)| (s == token).then_some(*id))
    }

    /// Whether `id` ends a generation (end of sequence or `<|endoftext|>`).
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.contains(&id)
    }

    /// The bytes a token stands for (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Decodes ids to text; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        // `Digits(individual_digits = true)`: each numeric character is a piece;
        // the text between them goes through GPT-2's pattern on its own.
        let mut start = 0;
        for (at, c) in text.char_indices() {
            if c.is_numeric() {
                self.split_into(&text[start..at], out);
                self.bpe(&text.as_bytes()[at..at + c.len_utf8()], out);
                start = at + c.len_utf8();
            }
        }
        self.split_into(&text[start..], out);
    }

    /// GPT-2's pattern over a digit-free stretch; unmatched text (there is
    /// none with this pattern, but the `tokenizers` split keeps it too) is a
    /// piece of its own.
    fn split_into(&self, text: &str, out: &mut Vec<u32>) {
        let mut last = 0;
        for found in self.pattern.find_iter(text) {
            // The pattern has no construct that can exceed fancy-regex's
            // backtracking limit on these short alternatives.
            let Ok(found) = found else { break };
            if found.start() > last {
                self.bpe(&text.as_bytes()[last..found.start()], out);
            }
            self.bpe(found.as_str().as_bytes(), out);
            last = found.end();
        }
        if last < text.len() {
            self.bpe(&text.as_bytes()[last..], out);
        }
    }

    /// Merges one piece: the lowest-ranked adjacent pair first, leftmost on
    /// ties, until no adjacent pair is a merge rule. A heap of candidate pairs
    /// over a linked list of symbols keeps a long piece (Korean without spaces,
    /// a base64 blob) at O(n log n).
    fn bpe(&self, piece: &[u8], out: &mut Vec<u32>) {
        match piece.len() {
            0 => return,
            1 => {
                out.push(self.byte_ids[usize::from(piece[0])]);
                return;
            }
            _ => {}
        }
        let n = piece.len();
        let mut ids: Vec<u32> = piece
            .iter()
            .map(|&b| self.byte_ids[usize::from(b)])
            .collect();
        // `next[i]` is the symbol after `i` (n at the end), `prev[i]` the one
        // before; a merged-away symbol has `ids[i] == u32::MAX`.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut heap = BinaryHeap::new();
        for i in 0..n - 1 {
            if let Some(m) = self.merges.get(&(ids[i], ids[i + 1])) {
                heap.push(Reverse((m.rank, i)));
            }
        }
        while let Some(Reverse((rank, i))) = heap.pop() {
            let j = next[i];
            if ids[i] == u32::MAX || j >= n {
                continue;
            }
            // Stale entries: the pair at `i` changed since it was pushed.
            let Some(m) = self
                .merges
                .get(&(ids[i], ids[j]))
                .filter(|m| m.rank == rank)
            else {
                continue;
            };
            ids[i] = m.merged;
            ids[j] = u32::MAX;
            next[i] = next[j];
            if next[i] < n {
                prev[next[i]] = i;
            }
            let p = prev[i];
            if p < n
                && let Some(m) = self.merges.get(&(ids[p], ids[i]))
            {
                heap.push(Reverse((m.rank, p)));
            }
            if next[i] < n
                && let Some(m) = self.merges.get(&(ids[i], ids[next[i]]))
            {
                heap.push(Reverse((m.rank, i)));
            }
        }
        out.extend(ids.into_iter().filter(|&id| id != u32::MAX));
    }
}

/// Turns generated tokens into text as it becomes valid UTF-8: a character
/// split across tokens is held back until its last byte arrives.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// Adds a token's bytes; returns the text that is now complete (may be
    /// empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // `error_len() == None`: the tail is an incomplete character that a
            // later token may finish; anything else is invalid and replaced.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let rest = self.pending.split_off(valid);
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        text
    }

    /// The bytes still held back, as text (an unfinished character becomes
    /// U+FFFD).
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

/// The GGUF's tokenizer as a Hugging Face `tokenizer.json`, so that other
/// code (sluice-core's counting and trimming) can count exactly as the model
/// does: SmolLM2's own layout (no normalizer; `Digits(individual_digits)` then
/// `ByteLevel`; BPE over the vocabulary and merges, ranked by pair; the
/// control tokens as special added tokens). A test checks it against
/// [`GgufTokenizer`] id for id on a corpus.
pub fn tokenizer_json(meta: &Metadata) -> Result<String, LocalError> {
    use serde_json::{Value, json};
    let tokens = strings(meta, "tokenizer.ggml.tokens")?;
    let merges = strings(meta, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = match meta.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .as_array()
            .ok_or_else(|| bad("tokenizer.ggml.token_type", "not an array"))?
            .iter()
            .map(|t| t.as_i64().unwrap_or(1))
            .collect(),
        None => Vec::new(),
    };
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), json!(id)))
        .collect();
    let added: Vec<Value> = tokens
        .iter()
        .enumerate()
        .filter(|(id, _)| {
            matches!(
                types.get(*id).copied().and_then(|t| i32::try_from(t).ok()),
                Some(TOKEN_TYPE_CONTROL)
            )
        })
        .map(|(id, t)| {
            json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    // SmolLM2's own tokenizer.json names `<|endoftext|>` as the unknown token,
    // which the GGUF keeps as `unknown_token_id`: it stands for the few bytes
    // the vocabulary lacks.
    let unknown = meta
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.as_i64())
        .and_then(|id| tokens.get(usize::try_from(id).ok()?))
        .cloned();
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": unknown, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
    .to_string())
}

fn metadata<'a>(meta: &'a Metadata, key: &str) -> Result<&'a crate::gguf::Value, LocalError> {
    meta.get(key)
        .ok_or_else(|| LocalError::Tokenizer(format!("the GGUF file has no {key}")))
}

fn strings(meta: &Metadata, key: &str) -> Result<Vec<String>, LocalError> {
    metadata(meta, key)?
        .as_array()
        .ok_or_else(|| bad(key, "not an array"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(key, "not an array of strings"))
        })
        .collect()
}

fn bad(key: &str, problem: &str) -> LocalError {
    LocalError::Tokenizer(format!("{key}: {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: the 256 bytes, then merges `a b`, `ab c`, `b c`.
    fn toy() -> GgufTokenizer {
        let mut tokens: Vec<String> = vec!["<|im_start|>".into(), "<|im_end|>".into()];
        tokens.extend(byte_to_char().iter().map(|c| c.to_string()));
        tokens.extend(["ab", "abc", "bc"].map(String::from));
        let mut types = vec![TOKEN_TYPE_CONTROL, TOKEN_TYPE_CONTROL];
        types.resize(tokens.len(), 1);
        let merges = ["a b", "ab c", "b c"].map(String::from);
        GgufTokenizer::new(&tokens, &merges, &types, Some(1), None).unwrap()
    }

    fn id(t: &GgufTokenizer, s: &str) -> u32 {
        let bytes = s.as_bytes();
        (0..t.vocab_size() as u32)
            .find(|&i| t.token_bytes(i) == bytes && !t.specials.iter().any(|(_, id)| *id == i))
            .unwrap()
    }

    #[test]
    fn merges_go_by_pair_rank_then_leftmost() {
        let t = toy();
        assert_eq!(t.encode("abc"), vec![id(&t, "abc")]);
        // "bc" merges before nothing else applies: `a b` (rank 0) wins over `b c`.
        assert_eq!(t.encode("abcbc"), vec![id(&t, "abc"), id(&t, "bc")]);
        assert_eq!(t.decode(&t.encode("abcbc x")), "abcbc x");
    }

    #[test]
    fn special_tokens_are_text_unless_asked_for() {
        let t = toy();
        assert!(t.encode("<|im_start|>").len() > 1);
        assert_eq!(
            t.encode_with_special_tokens("<|im_start|>ab<|im_end|>"),
            vec![0, id(&t, "ab"), 1]
        );
        assert!(t.is_stop(1));
    }

    #[test]
    fn the_stream_decoder_holds_back_split_characters() {
        let mut d = StreamDecoder::default();
        let han = "한".as_bytes();
        assert_eq!(d.push(&han[..1]), "");
        assert_eq!(d.push(&han[1..]), "한");
        assert_eq!(d.push(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(d.push(&han[..2]), "");
        assert_eq!(d.finish(), "\u{fffd}");
    }
}
