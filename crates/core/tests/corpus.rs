//! A deterministic mixed Korean/English corpus that exercises every branch of the
//! split patterns: contractions, case, numbers, punctuation runs, whitespace runs
//! before words and at the end, newlines, CJK, emoji, combining marks, and text
//! that looks like special tokens.

/// A tiny deterministic PRNG (xorshift64*), so the corpus is the same everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "hello",
    "world",
    "The",
    "QUICK",
    "brown",
    "fox's",
    "don't",
    "WE'LL",
    "they're",
    "I'm",
    "you've",
    "it'd",
    "naïve",
    "café",
    "Straße",
    "über",
    "tokenization",
    "GPT-4o",
    "x86_64",
    "안녕하세요",
    "서울의",
    "부산은",
    "날씨",
    "미세먼지",
    "알려줘",
    "내일",
    "강수",
    "예보",
    "대한민국",
    "하이퍼클로바",
    "토큰",
    "슬라이딩",
    "윈도우",
    "ㅋㅋㅋ",
    "ㅎㅎ",
    "한국어와English",
    "日本語",
    "中文字符",
    "Привет",
    "مرحبا",
    "😀",
    "👍🏽",
    "🇰🇷",
    "e\u{301}",
    "1234567",
    "3.14159",
    "2026-11-23",
    "100,000",
    "$5",
    "#tag",
    "@user",
    "https://example.com/a?b=c",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|fim_prefix|>",
    "'s",
    "'S",
    "'ll",
    "...",
    "!!!",
    "?!",
    "—",
    "«quote»",
    "(괄호)",
    "[x]",
    "{\"k\": 1}",
    "a/b/c",
    "\\n",
    "   ",
    "\t",
    "\u{a0}",
    "\u{3000}",
    "\u{200b}",
    "Ａｂｃ",
    "ｶﾀｶﾅ",
];

const GLUE: &[&str] = &[
    " ", " ", " ", "", "  ", "   ", "\n", "\n\n", " \n", "\t", ". ", ", ", "\r\n", "    \n  ",
];

/// `n` texts of up to `max_words` words each.
pub fn texts(seed: u64, n: usize, max_words: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let words = 1 + rng.below(max_words);
            let mut s = String::new();
            for _ in 0..words {
                if rng.below(20) == 0 {
                    // an arbitrary code point now and then
                    let c = char::from_u32(rng.below(0x3_0000) as u32).unwrap_or('?');
                    s.push(c);
                } else {
                    s.push_str(rng.pick(WORDS));
                }
                s.push_str(rng.pick(GLUE));
            }
            if rng.below(4) == 0 {
                s.push_str(rng.pick(GLUE));
            }
            s
        })
        .collect()
}
