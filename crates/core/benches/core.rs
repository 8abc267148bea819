//! Criterion benches of sluice-core: counting throughput (side by side with the
//! fastest Rust BPE crates on the same text) and trimming at a 4,096 budget.
//!
//! Run: `cargo bench -p sluice-core --bench core`

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::{Conversation, Embedded, Message, Model, Profiles};

/// Deterministic text: English, Korean or both, in sentences of varying shape.
fn text(kind: &str, bytes: usize) -> String {
    const EN: &[&str] = &[
        "The quick brown fox jumps over the lazy dog.",
        "It's 23°C in Seoul today,",
        "and they'll announce the forecast at 10:30.",
        "Tokenizers split text into pieces;",
        "each piece becomes one or more tokens.",
        "HTTP/1.1 200 OK",
        "x = f(y) + 42;",
    ];
    const KO: &[&str] = &[
        "내일 서울의 강수 예보 알려줘.",
        "미세먼지 정보는 오후에 업데이트됩니다.",
        "하이퍼클로바 X는 한국어에 강한 모델입니다.",
        "부산은 맑고 따뜻하겠습니다.",
        "슬라이딩 윈도우는 오래된 대화부터 삭제합니다.",
        "감사합니다!",
    ];
    let mut out = String::with_capacity(bytes + 64);
    let mut i = 0usize;
    while out.len() < bytes {
        let pick = match kind {
            "en" => EN[i % EN.len()],
            "ko" => KO[i % KO.len()],
            _ => {
                if i % 2 == 0 {
                    EN[(i / 2) % EN.len()]
                } else {
                    KO[(i / 2) % KO.len()]
                }
            }
        };
        out.push_str(pick);
        out.push(if i % 5 == 4 { '\n' } else { ' ' });
        i += 1;
    }
    out
}

/// Korean words that rarely recur: 1 to 4 syllables drawn at random from the
/// syllables of ordinary Korean sentences (a deterministic generator), each with a
/// particle now and then.
fn novel_korean(bytes: usize) -> String {
    let pool: Vec<char> = "내일서울의강수예보알려줘미세먼지정보는오후에업데이트됩니다하이퍼클로바한국어강한모델입니다\
                           부산은맑고따뜻하겠습니다슬라이딩윈도우오래된대화부터삭제감사합니다"
        .chars()
        .collect();
    const PARTICLES: &[&str] = &[
        "", "", "은", "는", "이", "가", "을", "를", "의", "에서", "으로",
    ];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        for _ in 0..1 + next() % 4 {
            out.push(pool[(next() % pool.len() as u64) as usize]);
        }
        out.push_str(PARTICLES[(next() % PARTICLES.len() as u64) as usize]);
        out.push(' ');
    }
    out
}

fn counting(c: &mut Criterion) {
    let sluice = Embedded::Cl100kBase.tokenizer();
    let tiktoken = tiktoken_rs::cl100k_base().unwrap();
    let bpe = bpe_openai::cl100k_base();
    for kind in ["en", "ko", "mixed"] {
        let text = text(kind, 64 * 1024);
        // The comparison is only fair if everyone gets the same answer.
        let n = sluice.count(&text);
        assert_eq!(n, tiktoken.encode_ordinary(&text).len());
        assert_eq!(n, bpe.count(&text));
        let mut group = c.benchmark_group(format!("count/cl100k/{kind}"));
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function("sluice", |b| b.iter(|| sluice.count(black_box(&text))));
        group.bench_function("bpe-openai", |b| b.iter(|| bpe.count(black_box(&text))));
        group.bench_function("tiktoken-rs", |b| {
            b.iter(|| tiktoken.encode_ordinary(black_box(&text)).len())
        });
        group.finish();
    }
    // Worst case for caches: Korean words that never recur (random syllables),
    // so every word is a full BPE merge.
    let novel = novel_korean(64 * 1024);
    assert_eq!(sluice.count(&novel), bpe.count(&novel));
    let mut group = c.benchmark_group("count/cl100k/ko-novel");
    group.throughput(Throughput::Bytes(novel.len() as u64));
    group.bench_function("sluice", |b| b.iter(|| sluice.count(black_box(&novel))));
    group.bench_function("bpe-openai", |b| b.iter(|| bpe.count(black_box(&novel))));
    group.finish();

    let o200k = Embedded::O200kBase.tokenizer();
    let bpe_o200k = bpe_openai::o200k_base();
    let text = text("mixed", 64 * 1024);
    assert_eq!(o200k.count(&text), bpe_o200k.count(&text));
    let mut group = c.benchmark_group("count/o200k/mixed");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("sluice", |b| b.iter(|| o200k.count(black_box(&text))));
    group.bench_function("bpe-openai", |b| {
        b.iter(|| bpe_o200k.count(black_box(&text)))
    });
    group.finish();

    // A byte-level BPE tokenizer.json (here the exported cl100k_base): sluice's
    // fast path against the `tokenizers` library loading the same file.
    let json = sluice_core::export_tokenizer_json(Embedded::Cl100kBase);
    let from_file =
        sluice_core::Tokenizer::from_json_bytes(json.as_bytes(), "cl100k.json").unwrap();
    assert!(from_file.fast_counting());
    let hf = tokenizers::Tokenizer::from_bytes(json.as_bytes()).unwrap();
    let count_hf = |t: &str| hf.encode_fast(t, false).unwrap().len();
    assert_eq!(from_file.count(&text), count_hf(&text));
    let mut group = c.benchmark_group("count/tokenizer-json/mixed");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("sluice", |b| b.iter(|| from_file.count(black_box(&text))));
    group.bench_function("tokenizers", |b| b.iter(|| count_hf(black_box(&text))));
    group.finish();

    // Per message: many short texts, as in a chat history.
    let messages: Vec<String> = text
        .split('\n')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let bytes: usize = messages.iter().map(String::len).sum();
    let mut group = c.benchmark_group("count/cl100k/per-message");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("sluice", |b| {
        b.iter(|| messages.iter().map(|m| sluice.count(m)).sum::<usize>())
    });
    group.bench_function("bpe-openai", |b| {
        b.iter(|| messages.iter().map(|m| bpe.count(m)).sum::<usize>())
    });
    group.finish();
}

fn history(turns: usize) -> Vec<Message> {
    let mut messages = vec![Message::system(
        "You are a helpful assistant. 친절하고 정확하게 답하세요.",
    )];
    for i in 0..turns {
        messages.push(Message::user(format!(
            "질문 {i}: 내일 서울의 강수 예보와 미세먼지 정보를 알려줘. What should I wear?"
        )));
        messages.push(Message::assistant(format!(
            "답변 {i}: 내일 서울은 오전에 비가 오고 오후에 갭니다. Bring an umbrella and a light jacket."
        )));
    }
    messages
}

/// Runs `step` `iters` times, each with a new turn never seen before, and adds up
/// the times it reports (its set-up is not timed).
fn time_grown<S>(
    iters: u64,
    state: &mut S,
    mut step: impl FnMut(&mut S, [Message; 2]) -> Duration,
) -> Duration {
    static TURN: AtomicU64 = AtomicU64::new(0);
    (0..iters)
        .map(|_| {
            let n = TURN.fetch_add(1, Ordering::Relaxed);
            let turn = [
                Message::user(format!("새 질문 {n}: 그럼 부산은 어때? And tomorrow?")),
                Message::assistant(format!("새 답변 {n}: 부산은 맑습니다. Sunny all day.")),
            ];
            step(state, turn)
        })
        .sum()
}

fn trimming(c: &mut Criterion) {
    let profiles = Profiles::builtin();
    let warm = profiles.model("HCX-003").unwrap();
    let profile = warm.profile().clone();
    let cold = Model::with_cache_capacity(profile, warm.tokenizer().clone(), 0);
    let mut group = c.benchmark_group("trim/4096");
    for turns in [10, 100, 1_000, 10_000] {
        let messages = history(turns);
        let expected = cold.trim(&messages, 1024).unwrap();
        assert_eq!(warm.trim(&messages, 1024).unwrap(), expected);
        group.bench_with_input(BenchmarkId::new("uncached", turns), &messages, |b, m| {
            b.iter(|| cold.trim(black_box(m), 1024).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("cached", turns), &messages, |b, m| {
            b.iter(|| warm.trim(black_box(m), 1024).unwrap())
        });
    }
    group.finish();

    // A conversation that grew by one turn since it was last trimmed: only the new
    // turn is tokenized, everything else comes from the cache. `Model::trim` takes
    // the grown history as a slice (one pass over its roles, a hash of each kept
    // message); a `Conversation` remembers its layout and counts.
    let mut group = c.benchmark_group("retrim-grown-by-one-turn");
    for turns in [1_000, 10_000] {
        let base = history(turns);
        warm.trim(&base, 1024).unwrap();
        let mut grown = base.clone();
        group.bench_function(BenchmarkId::new("Model::trim", turns), |b| {
            b.iter_custom(|iters| {
                time_grown(iters, &mut grown, |grown, turn| {
                    grown.truncate(base.len());
                    grown.extend(turn);
                    let t = Instant::now();
                    black_box(warm.trim(grown, 1024).unwrap());
                    t.elapsed()
                })
            })
        });
        let mut chat = Conversation::with_messages(warm.clone(), base.clone());
        chat.trim(1024).unwrap();
        group.bench_function(BenchmarkId::new("Conversation::trim", turns), |b| {
            b.iter_custom(|iters| {
                time_grown(iters, &mut chat, |chat, turn| {
                    chat.truncate(base.len());
                    chat.extend(turn);
                    let t = Instant::now();
                    black_box(chat.trim(1024).unwrap());
                    t.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, counting, trimming);
criterion_main!(benches);
