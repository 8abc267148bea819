//! A fast counting path for byte-level BPE `tokenizer.json` files.
//!
//! Many tokenizers (HyperCLOVAX-SEED's among them, and every export of a tiktoken
//! encoding) are byte-level BPEs split by OpenAI's cl100k or o200k pattern. For
//! those, sluice counts with its own BPE and hand-written scanner instead of the
//! `tokenizers` pipeline: the merge list becomes a rank table (a token's rank is the
//! priority of the first merge that makes it), and the split pattern is recognised
//! by its text.
//!
//! The two algorithms agree whenever every way of forming a token by two adjacent
//! tokens is a listed merge (true for tiktoken-derived files). Other files may
//! disagree in rare cases, so the fast path is only taken after it gives the same
//! count as `tokenizers` on every line of a built-in validation text; otherwise the
//! file is counted by `tokenizers` alone. Ids always come from `tokenizers`.

use serde_json::Value;

use crate::bpe::{Rank, RankTable};
use crate::pretokenize::{CL100K_PATTERN_ORIGINAL, O200K_PATTERN_ORIGINAL};
use crate::scan::{Pattern, Scanner};

/// tiktoken's newer spelling of the cl100k pattern (possessive quantifiers), which
/// splits text the same way.
const CL100K_PATTERN_POSSESSIVE: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

/// GPT-2's byte-to-character map, inverted.
fn char_to_byte() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            char::from(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("valid code point")
        };
        map.insert(c, b);
    }
    map
}

fn is_null_or_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Bool(b)) => !b,
        _ => false,
    }
}

fn pattern_of(pre: &Value) -> Option<Pattern> {
    let steps = pre.get("pretokenizers")?.as_array()?;
    let [split, byte_level] = steps.as_slice() else {
        return None;
    };
    let ok = pre.get("type")? == "Sequence"
        && split.get("type")? == "Split"
        && split.get("behavior")? == "Isolated"
        && is_null_or_empty(split.get("invert"))
        && byte_level.get("type")? == "ByteLevel"
        && is_null_or_empty(byte_level.get("add_prefix_space"))
        && is_null_or_empty(byte_level.get("use_regex"));
    if !ok {
        return None;
    }
    match split.get("pattern")?.get("Regex")?.as_str()? {
        p if p == CL100K_PATTERN_ORIGINAL || p == CL100K_PATTERN_POSSESSIVE => {
            Some(Pattern::Cl100k)
        }
        p if p == O200K_PATTERN_ORIGINAL => Some(Pattern::O200k),
        _ => None,
    }
}

/// The rank table and split pattern of a byte-level BPE `tokenizer.json`, or `None`
/// if the file is anything else.
pub(crate) fn rank_table(json: &[u8]) -> Option<(RankTable, Scanner)> {
    let doc: Value = serde_json::from_slice(json).ok()?;
    if !is_null_or_empty(doc.get("normalizer")) {
        return None;
    }
    // Added tokens that are not special are matched in the text by `tokenizers`.
    if let Some(added) = doc.get("added_tokens").and_then(Value::as_array) {
        if added
            .iter()
            .any(|t| t.get("special") != Some(&Value::Bool(true)))
        {
            return None;
        }
    }
    let pattern = pattern_of(doc.get("pre_tokenizer")?)?;
    let model = doc.get("model")?;
    let plain = model.get("type")? == "BPE"
        && is_null_or_empty(model.get("dropout"))
        && is_null_or_empty(model.get("byte_fallback"))
        && is_null_or_empty(model.get("continuing_subword_prefix"))
        && is_null_or_empty(model.get("end_of_word_suffix"));
    if !plain {
        return None;
    }
    let bytes_of = {
        let map = char_to_byte();
        move |s: &str| -> Option<Vec<u8>> { s.chars().map(|c| map.get(&c).copied()).collect() }
    };
    let mut ranks: rustc_hash::FxHashMap<Vec<u8>, Rank> = rustc_hash::FxHashMap::default();
    for b in 0..=255u8 {
        ranks.insert(vec![b], Rank::from(b));
    }
    for (i, merge) in model.get("merges")?.as_array()?.iter().enumerate() {
        let (left, right) = match merge {
            Value::String(s) => s.split_once(' ')?,
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(l), Value::String(r)] => (l.as_str(), r.as_str()),
                _ => return None,
            },
            _ => return None,
        };
        let mut token = bytes_of(left)?;
        token.extend(bytes_of(right)?);
        let rank = 256 + Rank::try_from(i).ok()?;
        ranks.entry(token).or_insert(rank);
    }
    // Every vocabulary entry must be reachable: a byte or a merge result.
    for key in model.get("vocab")?.as_object()?.keys() {
        if !ranks.contains_key(&bytes_of(key)?) {
            return None;
        }
    }
    let pairs = ranks
        .into_iter()
        .map(|(bytes, rank)| (bytes.into_boxed_slice(), rank))
        .collect();
    Some((RankTable::from_pairs(pairs), Scanner::new(pattern)))
}

/// Text the fast path must count exactly like `tokenizers` before it is used.
pub(crate) fn validation_lines() -> Vec<String> {
    const SEEDS: &[&str] = &[
        "The quick brown fox jumps over the lazy dog. It's 23°C; they'll say \"hello\"!",
        "내일 서울의 강수 예보 알려줘. 미세먼지 정보는? 그럼 부산은? ㅋㅋㅋ 하이퍼클로바X",
        "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n\n\t// comment   \r\n",
        "日本語のテキストと中文字符, Привет мир, مرحبا, naïve café Straße 😀👍🏽🇰🇷",
        "   leading and trailing spaces   \n\n\n   and  double  spaces 1234567 3.14159",
        "<|im_start|>user\nhi<|im_end|> <|endoftext|> 'S 'LL 'Re WE'VE I'm",
        "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgYmFzZTY0IGJsb2I=aGVsbG8gd29ybGQ=",
    ];
    let mut lines: Vec<String> = SEEDS.iter().map(|s| s.to_string()).collect();
    for (i, a) in SEEDS.iter().enumerate() {
        let b = SEEDS[(i + 3) % SEEDS.len()];
        lines.push(format!("{a} {b}"));
        lines.push(a.to_uppercase());
    }
    lines.push("가나다라마바사아자차카타파하".repeat(12));
    lines
}
