//! Router normalisation and routing on arbitrary text: normalising is
//! idempotent, routing with the sample routers never panics, and every span it
//! reports lies on character boundaries of the text it names and matches it.

#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sluice_core::Message;
use sluice_router::{RouteRequest, Router, SAMPLE_V1, SAMPLE_V2, Source, normalize};

static ROUTERS: LazyLock<[Router; 2]> = LazyLock::new(|| {
    [
        Router::from_toml(SAMPLE_V1, "sample/1.toml").unwrap(),
        Router::from_toml(SAMPLE_V2, "sample/2.toml").unwrap(),
    ]
});

/// Words the sample routers' rules know, so that rules fire and spans exist.
const WORDS: &[&str] = &[
    "미세먼지",
    "날씨",
    "서울",
    "부산",
    "내일",
    "비 와",
    "근처 맛집",
    "약국",
    "weather",
    "Seoul",
    "ＳＥＯＵＬ",
    "rain",
    "where is",
    "룸살롱",
    "19금 업소",
    "10도",
    "ᄆ",
    "ᅵ",
    "세",
    "먼",
    "지",
    "미",
];

/// Characters normalisation treats specially.
const CHARS: &[char] = &[
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{FEFF}',
    '\u{00AD}',
    '\u{061C}',
    '\u{0614}',
    '\u{0618}',
    '\u{0301}',
    '\u{0308}',
    '\u{1100}',
    '\u{1161}',
    '\u{11A8}',
    '\u{3131}',
    '\u{FF21}',
    '\u{2160}',
    '\u{FB01}',
    '\u{0130}',
    '\u{03A3}',
    'ß',
    ' ',
    '\t',
    '\n',
    '\u{3000}',
    '\u{00A0}',
    '\u{2028}',
    '\u{E000}',
    '\u{1F600}',
    '\u{FE0F}',
    '\u{E0041}',
    '\u{0345}',
    '\u{1E9E}',
];

#[derive(Debug)]
struct Text(String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut s = String::new();
        for _ in 0..u.int_in_range(0u8..=24)? {
            match u.int_in_range(0u8..=3)? {
                0 => s.push_str(u.choose(WORDS)?),
                1 => s.push(*u.choose(CHARS)?),
                2 => s.push(char::arbitrary(u)?),
                _ => s.push_str(<&str>::arbitrary(u)?),
            }
        }
        Ok(Text(s))
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    query: Text,
    history: Vec<Text>,
    version: bool,
}

fuzz_target!(|input: Input| {
    let texts = std::iter::once(&input.query).chain(&input.history);
    for Text(t) in texts {
        let once = normalize(t);
        assert_eq!(normalize(&once), once, "not idempotent on {t:?}");
    }
    let mut request = RouteRequest::new(input.query.0.clone());
    for (i, Text(t)) in input.history.iter().take(6).enumerate() {
        request.chat_history.push(if i % 3 == 2 {
            Message::assistant(t.clone())
        } else {
            Message::user(t.clone())
        });
    }
    let router = &ROUTERS[usize::from(input.version)];
    let plain = router.route(&request);
    let Ok(routed) = router.route_explained(&request) else {
        assert!(plain.is_err());
        return;
    };
    assert_eq!(plain.as_ref().ok(), Some(&routed.result));
    for fired in &routed.explanation.fired {
        let text = match fired.source {
            Source::Query => &request.query,
            Source::ChatHistory(i) => &request.chat_history[i].content,
        };
        assert!(
            fired.start <= fired.end && fired.end <= text.len(),
            "{fired:?} in {text:?}"
        );
        assert!(text.is_char_boundary(fired.start), "{fired:?} in {text:?}");
        assert!(text.is_char_boundary(fired.end), "{fired:?} in {text:?}");
        assert_eq!(
            fired.text,
            text[fired.start..fired.end],
            "{fired:?} in {text:?}"
        );
    }
});
