//! Exporting an embedded encoding as a Hugging Face `tokenizer.json`.
//!
//! A tiktoken rank table becomes a byte-level BPE: the vocabulary maps each token's
//! bytes (in GPT-2's byte-to-unicode alphabet) to its rank, and the merges list, for
//! every token, each split into two tokens, ordered by the merged token's rank.
//! With `ignore_merges` (a whole piece that is a token is taken as is, as tiktoken
//! does) this reproduces tiktoken's output; a test checks it on a large corpus.

use serde_json::{Value, json};

use crate::tokenizer::Embedded;

/// GPT-2's reversible mapping from bytes to printable characters.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("valid code point")
        };
    }
    table
}

/// The `tokenizer.json` of an embedded encoding, loadable by the `tokenizers`
/// crate (and Python package) with the same counts as sluice.
///
/// ```
/// let json = sluice_core::export_tokenizer_json(sluice_core::Embedded::Cl100kBase);
/// assert!(json.starts_with('{'));
/// ```
pub fn export_tokenizer_json(encoding: Embedded) -> String {
    let tokenizer = encoding.tokenizer();
    let bpe = tokenizer.bpe().expect("embedded encodings are BPE");
    let table = &bpe.table;
    let chars = byte_to_char();
    let show = |bytes: &[u8]| -> String { bytes.iter().map(|&b| chars[b as usize]).collect() };

    let mut vocab = serde_json::Map::with_capacity(table.len());
    let mut merges = Vec::new();
    for (bytes, rank) in table.iter() {
        vocab.insert(show(bytes), Value::from(rank));
        let mut splits: Vec<(u32, u32, usize)> = (1..bytes.len())
            .filter_map(|i| {
                let left = table.rank(&bytes[..i])?;
                let right = table.rank(&bytes[i..])?;
                Some((left, right, i))
            })
            .collect();
        splits.sort_unstable();
        merges.extend(
            splits
                .into_iter()
                .map(|(_, _, i)| json!([show(&bytes[..i]), show(&bytes[i..])])),
        );
    }
    let mut specials: Vec<_> = bpe.specials().collect();
    specials.sort_by_key(|&(_, id)| id);
    let added_tokens: Vec<Value> = specials
        .into_iter()
        .map(|(content, id)| {
            json!({
                "id": id, "content": content, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true
            })
        })
        .collect();
    let doc = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": encoding.original_pattern()},
                    "behavior": "Isolated",
                    "invert": false
                },
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
            ]
        },
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": true,
            "vocab": vocab,
            "merges": merges
        }
    });
    doc.to_string()
}
