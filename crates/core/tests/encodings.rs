//! The embedded encodings against the reference implementation (tiktoken-rs), and
//! the exported `tokenizer.json` against both, through the `tokenizers` crate.

use sluice_core::{Embedded, Tokenizer, export_tokenizer_json};

use crate::corpus;

fn reference(encoding: Embedded) -> tiktoken_rs::CoreBPE {
    match encoding {
        Embedded::Cl100kBase => tiktoken_rs::cl100k_base().unwrap(),
        Embedded::O200kBase => tiktoken_rs::o200k_base().unwrap(),
        other => panic!("no reference implementation for {other:?}"),
    }
}

fn corpus_for_tests() -> Vec<String> {
    let mut texts = corpus::texts(7, 3000, 40);
    // Long pieces take the heap-based merge path.
    texts.push("가나다라마바사아자차카타파하".repeat(20));
    texts.push("aGVsbG8gd29ybGQ".repeat(50));
    texts.push("x".repeat(1000));
    texts.push(" ".repeat(500) + "end");
    texts
}

#[test]
fn embedded_encodings_match_tiktoken() {
    let texts = corpus_for_tests();
    for encoding in Embedded::ALL {
        let ours = encoding.tokenizer();
        let theirs = reference(encoding);
        let mut mismatches = 0;
        for text in &texts {
            let expected = theirs.encode_ordinary(text);
            let got = ours.encode(text);
            if got != expected {
                mismatches += 1;
                eprintln!("{encoding}: {text:?}\n  ours   {got:?}\n  theirs {expected:?}");
            }
            assert_eq!(ours.count(text), expected.len(), "{encoding}: {text:?}");
        }
        assert_eq!(mismatches, 0, "{encoding}: {mismatches} mismatches");
    }
}

#[test]
fn exported_tokenizer_json_gives_the_same_counts() {
    let texts = corpus_for_tests();
    for encoding in Embedded::ALL {
        let json = export_tokenizer_json(encoding);
        let hf = Tokenizer::from_json_bytes(json.as_bytes(), encoding.name()).unwrap();
        let ours = encoding.tokenizer();
        let mut mismatches = 0;
        for text in &texts {
            if hf.encode(text) != ours.encode(text) {
                mismatches += 1;
                eprintln!("{encoding}: {text:?}");
            }
            assert_eq!(hf.count(text), ours.count(text));
        }
        assert_eq!(mismatches, 0, "{encoding}: {mismatches} mismatches");
    }
}

#[test]
fn special_token_text_is_plain_text() {
    let cl100k = Embedded::Cl100kBase.tokenizer();
    let theirs = reference(Embedded::Cl100kBase);
    for text in ["<|im_start|>", "<|endoftext|>", "a<|im_end|>b"] {
        assert_eq!(cl100k.count(text), theirs.encode_ordinary(text).len());
        assert!(cl100k.count(text) > 1, "{text}");
    }
    assert_eq!(cl100k.special_token_id("<|endoftext|>"), Some(100257));
}

#[test]
fn count_within_stops_at_the_limit() {
    let cl100k = Embedded::Cl100kBase.tokenizer();
    let text = "hello world ".repeat(1000);
    let n = cl100k.count(&text);
    assert_eq!(cl100k.count_within(&text, n), Some(n));
    assert_eq!(cl100k.count_within(&text, n - 1), None);
    assert_eq!(cl100k.count_within("", 0), Some(0));
}

#[test]
fn counts_are_known_values() {
    // Values from OpenAI's tiktoken, pinned so that a change in the tables shows.
    let cl100k = Embedded::Cl100kBase.tokenizer();
    assert_eq!(cl100k.encode("hello world"), vec![15339, 1917]);
    let o200k = Embedded::O200kBase.tokenizer();
    assert_eq!(o200k.encode("hello world"), vec![24912, 2375]);
}

#[test]
fn byte_level_tokenizer_json_counts_on_the_fast_path() {
    let texts = corpus_for_tests();
    for encoding in Embedded::ALL {
        let json = export_tokenizer_json(encoding);
        let file = Tokenizer::from_json_bytes(json.as_bytes(), "exported").unwrap();
        assert!(file.fast_counting(), "{encoding}");
        for text in &texts {
            // `encode` always goes through `tokenizers`; `count` took the fast path.
            assert_eq!(
                file.count(text),
                file.encode(text).len(),
                "{encoding}: {text:?}"
            );
        }
    }
}

#[test]
fn other_tokenizer_json_files_count_through_tokenizers() {
    // A pattern sluice has no scanner for: the file must still count exactly.
    let json = export_tokenizer_json(Embedded::Cl100kBase).replace(r"\\p{N}{1,3}", r"\\p{N}{1,2}");
    let file = Tokenizer::from_json_bytes(json.as_bytes(), "modified").unwrap();
    assert!(!file.fast_counting());
    for text in corpus_for_tests().iter().take(300) {
        assert_eq!(file.count(text), file.encode(text).len());
    }
    assert_eq!(file.count("12345"), 3);
}
