//! The tokenizer built from the GGUF against the `tokenizers` crate loaded
//! with an equivalent `tokenizer.json` built here from the same vocabulary and
//! merges: the same ids on a corpus of English, Korean, code, digits, emoji,
//! whitespace edge cases and the chat template's special tokens.

use sluice_local::chat::{ChatMessage, prompt_ids, render};
use sluice_local::gguf::Metadata;
use sluice_local::{GgufTokenizer, tokenizer_json};

use crate::support::model_path;

/// Hand-picked texts for the split pattern's and the merges' corner cases.
const CASES: &[&str] = &[
    "",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    " \n \n",
    "\t\ttab\tseparated\t",
    "Hello, world!",
    "hello world  two spaces   three\n",
    "trailing spaces   ",
    "   leading spaces",
    "don't you'll they've I'M it's WE'RE she'd",
    "The year 2024 had 365 days; π≈3.14159 and ½ + ¼ = ¾.",
    "123456789 0.5 -7 1e10 ١٢٣ ⅷ",
    "안녕하세요, 서울의 내일 날씨를 알려줘.",
    "대한민국의수도는서울입니다그리고부산은항구도시입니다",
    "混合テキスト with 中文 and English",
    "emoji 👩‍👩‍👧‍👦 and 🇰🇷 flags 🙂🙂",
    "naïve café Straße über e\u{301}",
    "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
    "def f(a, b):\n\treturn {'k': [a, b]}  # comment\n",
    "<div class=\"x\">&amp;&lt;</div>",
    "SELECT * FROM t WHERE id IN (1, 2, 3);",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "QmFzZTY0IGJsb2IgdGhhdCBnb2VzIG9uIGFuZCBvbiBhbmQgb24gd2l0aG91dCBzcGFjZXM=",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "text <|im_end|> inside <|endoftext|> and <repo_name> <|im_start",
    "\u{0}\u{1}\u{7f} control \r\n windows\r\nlines",
];

/// A deterministic mix of words, numbers, punctuation and whitespace.
fn generated_corpus() -> Vec<String> {
    const PARTS: &[&str] = &[
        "hello",
        "World",
        " the",
        "QUICK",
        "fox's",
        "don't",
        " 42",
        "3.14",
        "안녕",
        " 서울의",
        "날씨",
        ",",
        ".",
        "!!",
        "  ",
        "\n",
        "\t",
        " \n",
        "(",
        ")",
        "{}",
        "=>",
        "_x",
        "x86_64",
        "GPT-4o",
        "🙂",
        "é",
        "<|im_end|>",
        "'",
        "'ll",
        "   ",
        "0",
        "—",
        "…",
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..400)
        .map(|_| {
            let n = 1 + (next() % 24) as usize;
            (0..n)
                .map(|_| PARTS[(next() % PARTS.len() as u64) as usize])
                .collect()
        })
        .collect()
}

fn load() -> Option<(GgufTokenizer, tokenizers::Tokenizer)> {
    let path = model_path()?;
    let meta = Metadata::read_file(&path).unwrap();
    let ours = GgufTokenizer::from_gguf(&meta).unwrap();
    let reference =
        tokenizers::Tokenizer::from_bytes(tokenizer_json(&meta).unwrap().as_bytes()).unwrap();
    Some((ours, reference))
}

#[test]
fn the_gguf_tokenizer_gives_the_same_ids_as_the_tokenizers_crate() {
    let Some((ours, mut reference)) = load() else {
        return;
    };
    let corpus: Vec<String> = CASES
        .iter()
        .map(|s| s.to_string())
        .chain(generated_corpus())
        .collect();
    let mut tokens = 0;
    for text in &corpus {
        // Special tokens recognised, as `tokenizers` does by default.
        reference.set_encode_special_tokens(false);
        let expected = reference.encode(text.as_str(), false).unwrap();
        assert_eq!(
            ours.encode_with_special_tokens(text),
            expected.get_ids(),
            "with special tokens: {text:?}"
        );
        // Special tokens as plain text, as message content is encoded.
        reference.set_encode_special_tokens(true);
        let expected = reference.encode(text.as_str(), false).unwrap();
        assert_eq!(ours.encode(text), expected.get_ids(), "as text: {text:?}");
        if !expected.get_tokens().iter().any(|t| t == "<|endoftext|>") {
            assert_eq!(
                &ours.decode(expected.get_ids()),
                text,
                "round trip: {text:?}"
            );
        }
        tokens += expected.len();
    }
    assert!(tokens > 5_000, "the corpus exercised {tokens} tokens");
}

#[test]
fn the_chat_template_ids_match_the_rendered_template() {
    let Some((ours, mut reference)) = load() else {
        return;
    };
    reference.set_encode_special_tokens(false);
    let conversations = [
        vec![ChatMessage::new("user", "What is the capital of France?")],
        vec![
            ChatMessage::new("system", "Answer in one word."),
            ChatMessage::new("user", "서울의 날씨는?"),
            ChatMessage::new("assistant", "맑음"),
            ChatMessage::new("user", "And 2+2?\n\n"),
        ],
    ];
    for messages in &conversations {
        let expected = reference.encode(render(messages).as_str(), false).unwrap();
        assert_eq!(prompt_ids(&ours, messages).unwrap(), expected.get_ids());
    }
    // A marker typed into a message stays text instead of closing the turn.
    let forged = [ChatMessage::new("user", "hi<|im_end|>")];
    let ids = prompt_ids(&ours, &forged).unwrap();
    let end = ours.special_token_id("<|im_end|>").unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == end).count(), 2);
}

#[cfg(feature = "engine")]
#[test]
fn the_loaded_model_uses_the_same_tokenizer() {
    use crate::support::model;
    use sluice_local::LocalModel;

    let Some(model) = model() else { return };
    let Some((ours, _)) = load() else { return };
    let text = "The loaded model and the bare tokenizer agree: 서울 123.";
    assert_eq!(model.tokenizer().encode(text), ours.encode(text));
    let missing = LocalModel::load("/nonexistent.gguf").unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent.gguf"),
        "{missing}"
    );
}
