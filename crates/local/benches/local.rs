//! Speed and memory of the local model, in the shapes llama.cpp's
//! `llama-bench` measures, so `benches/local/run.sh` can run both side by side
//! on the same GGUF file with the same thread count.
//!
//! ```sh
//! cargo bench -p sluice-local --features engine --bench local -- speed 2
//! cargo bench -p sluice-local --features engine --bench local -- batch 2
//! cargo bench -p sluice-local --features engine --bench local -- ttft 2
//! ```
//!
//! - `speed THREADS`: prompt processing of a 512-token prompt (`pp512`), then
//!   generation of 128 tokens after a ~256-token context (`tg128 @ d256`),
//!   each the median of `SLUICE_BENCH_RUNS` runs (default 5), and the
//!   process's peak resident memory (`VmHWM`).
//! - `batch THREADS`: one generation alone against eight at once in a
//!   [`Pool`], aggregate tokens per second (wall clock, prompts included),
//!   and how many of the eight answered exactly as they do alone.
//! - `ttft THREADS`: time to the first token of a short practice run on a
//!   warm pool (median of `SLUICE_BENCH_RUNS`).
//!
//! With `SLUICE_BENCH_Q8_0=1` the model runs re-quantized to Q8_0
//! ([`LoadOptions::requantize_q8_0`]).
//!
//! Each line of output is `key value`, for the script to read.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_local::chat::prompt_ids;
use sluice_local::fetch::{FETCH_HINT, model_dir, smollm2_path};
use sluice_local::{ChatMessage, Event, Generation, LoadOptions, LocalModel, Pool, SamplingParams};

const TEXT: &str = "Seoul is the capital of South Korea. It lies on the Han River and has about \
                    nine and a half million people. Busan is the second largest city and the \
                    country's largest port. The Korean alphabet, Hangul, was created in 1443 \
                    under King Sejong, who wanted every person to be able to read and write. ";

fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens,
        seed: None,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A conversation whose prompt (template included) is `target` tokens, or as
/// close as re-tokenizing a cut text allows; the user asks for a long story so
/// that greedy decoding does not stop early.
fn conversation(model: &LocalModel, target: usize) -> Vec<ChatMessage> {
    let tokenizer = model.tokenizer();
    let notes = tokenizer.encode(&TEXT.repeat(40));
    let build = |k: usize| {
        vec![
            ChatMessage::new(
                "system",
                format!(
                    "You answer using these notes.\n{}",
                    tokenizer.decode(&notes[..k])
                ),
            ),
            ChatMessage::new(
                "user",
                "Write a long, detailed story about a trip from Seoul to Busan by train.",
            ),
        ]
    };
    let mut k = target.min(notes.len());
    for _ in 0..8 {
        let len = prompt_ids(tokenizer, &build(k)).expect("template").len();
        if len == target {
            break;
        }
        k = (k + target).saturating_sub(len).min(notes.len());
    }
    build(k)
}

/// `SLUICE_BENCH_Q8_0=1`: the Q4_1 weights re-quantized to Q8_0 at load
/// ([`LoadOptions::requantize_q8_0`]).
fn q8_0() -> bool {
    std::env::var("SLUICE_BENCH_Q8_0").is_ok_and(|v| v == "1")
}

/// The model on `threads` threads, in a pool of `slots` slots of `cells`
/// key/value cells each (accepting as many requests as it has slots).
fn pool(
    path: &std::path::Path,
    threads: usize,
    slots: usize,
    cells: usize,
) -> (Arc<LocalModel>, Pool) {
    let options = LoadOptions {
        threads,
        cache_tokens: cells,
        requantize_q8_0: q8_0(),
    };
    let model = Arc::new(LocalModel::load_with(path, options).expect("the model loads"));
    let pool = Pool::new(Arc::clone(&model), slots, slots);
    (model, pool)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn speed(path: &std::path::Path, threads: usize, runs: usize) {
    // One slot of 768 cells (the 512-token prompt and its first token),
    // served by a pool as practice runs are, kept warm between requests, as
    // llama-bench keeps its context.
    let (model, pool) = pool(path, threads, 1, 768);
    let pp_messages = conversation(&model, 512);
    let tg_messages = conversation(&model, 256);
    let (mut pp, mut tg) = (vec![], vec![]);
    let (mut pp_tokens, mut tg_context, mut tg_tokens) = (0, 0, 0);
    // One untimed run of each warms the caches and the scratch buffers.
    for run in 0..=runs {
        let g = alone(&pool, &pp_messages, greedy(1));
        pp_tokens = g.prompt_tokens;
        let g2 = alone(&pool, &tg_messages, greedy(128));
        tg_context = g2.prompt_tokens;
        tg_tokens = g2.tokens.len();
        if run > 0 {
            pp.push(g.prompt_tokens as f64 / g.prompt_time.as_secs_f64());
            // The first token comes from the prompt's logits; each of the rest
            // took one forward pass of one token.
            tg.push((g2.tokens.len() - 1) as f64 / g2.generation_time.as_secs_f64());
        }
    }
    println!("threads {threads}");
    println!("pp_tokens {pp_tokens}");
    println!("pp_tps {:.1}", median(pp));
    println!("tg_context {tg_context}");
    println!("tg_tokens {tg_tokens}");
    println!("tg_tps {:.1}", median(tg));
    println!("peak_rss_mb {:.0}", peak_rss_mb());
}

/// One request through `pool`, waited for.
fn alone(pool: &Pool, messages: &[ChatMessage], params: SamplingParams) -> Generation {
    let (tx, rx) = mpsc::channel();
    pool.submit(
        messages.to_vec(),
        params,
        Box::new(move |e| tx.send(e).is_ok()),
    )
    .expect("accepted");
    loop {
        if let Event::Done(done) = rx.recv().expect("the pool answers") {
            return done.expect("generation succeeds");
        }
    }
}

/// Eight requests for long answers, each a little different.
fn class() -> Vec<Vec<ChatMessage>> {
    [
        "a trip from Seoul to Busan by train",
        "a cat who learns to sail",
        "the first day at a new school",
        "a lighthouse keeper in winter",
        "a robot that plants trees",
        "two friends climbing a mountain",
        "a baker who opens a shop by the sea",
        "a lost dog finding its way home",
    ]
    .iter()
    .map(|topic| {
        vec![ChatMessage::new(
            "user",
            format!("Write a long, detailed story about {topic}."),
        )]
    })
    .collect()
}

/// Runs `conversations` at once in `pool`; the texts and tokens per second
/// of all of them together, from the first submit to the last token.
fn together(pool: &Pool, conversations: &[Vec<ChatMessage>]) -> (Vec<Vec<u32>>, f64) {
    let start = Instant::now();
    let receivers: Vec<_> = conversations
        .iter()
        .map(|messages| {
            let (tx, rx) = mpsc::channel();
            pool.submit(
                messages.clone(),
                greedy(128),
                Box::new(move |e| tx.send(e).is_ok()),
            )
            .expect("accepted");
            rx
        })
        .collect();
    let mut outputs = vec![];
    for rx in receivers {
        loop {
            if let Event::Done(done) = rx.recv().expect("the pool answers") {
                outputs.push(done.expect("generation succeeds").tokens);
                break;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let tokens: usize = outputs.iter().map(Vec::len).sum();
    (outputs, tokens as f64 / elapsed)
}

fn batch(path: &std::path::Path, threads: usize, runs: usize) {
    let (model, pool) = pool(path, threads, 8, 2048);
    let class = class();
    let (mut one, mut eight) = (vec![], vec![]);
    let mut alone_tokens = vec![];
    let mut identical = 0;
    // Alternating, so that a change of load hits both alike.
    for run in 0..=runs.min(3) {
        let (alone, tps) = together(&pool, &class[..1]);
        let (all, tps8) = together(&pool, &class);
        if run == 0 {
            alone_tokens = class
                .iter()
                .map(|m| {
                    model
                        .generate(m, &greedy(128), |_| true)
                        .expect("generation")
                        .tokens
                })
                .collect();
            // Benches check the result once: every request got an answer,
            // and how many are the same to the last token as alone is
            // reported (all eight: the engine module says why).
            assert_eq!(alone[0], alone_tokens[0]);
            assert!(all.iter().all(|tokens| !tokens.is_empty()));
            identical = all
                .iter()
                .zip(&alone_tokens)
                .filter(|(a, b)| a == b)
                .count();
            continue;
        }
        one.push(tps);
        eight.push(tps8);
    }
    let (one, eight) = (median(one), median(eight));
    println!("threads {threads}");
    println!(
        "tokens_each {:?}",
        alone_tokens.iter().map(Vec::len).collect::<Vec<_>>()
    );
    println!("one_tps {one:.1}");
    println!("eight_tps {eight:.1}");
    println!("ratio {:.2}", eight / one);
    println!("identical {identical}");
}

fn ttft(path: &std::path::Path, threads: usize, runs: usize) {
    // As the practice provider runs it: eight slots of 2,048 cells.
    let (model, pool) = pool(path, threads, 8, 2048);
    // A short practice run: agent instructions, a style preset and a question.
    let messages = vec![
        ChatMessage::new(
            "system",
            "You are a friendly tutor for a middle-school science class. Answer clearly and \
             briefly, in plain words. Style: concise.",
        ),
        ChatMessage::new("user", "Why do leaves change colour in autumn?"),
    ];
    let prompt_tokens = prompt_ids(model.tokenizer(), &messages)
        .expect("template")
        .len();
    let mut firsts = vec![];
    for run in 0..=runs {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        pool.submit(
            messages.clone(),
            greedy(16),
            Box::new(move |e| tx.send(e).is_ok()),
        )
        .expect("accepted");
        let mut first: Option<Duration> = None;
        loop {
            match rx.recv().expect("the pool answers") {
                Event::Text(_) => {
                    first.get_or_insert_with(|| start.elapsed());
                }
                Event::Done(done) => {
                    done.expect("generation succeeds");
                    break;
                }
            }
        }
        if run > 0 {
            firsts.push(first.expect("a token").as_secs_f64() * 1e3);
        }
    }
    println!("threads {threads}");
    println!("ttft_prompt_tokens {prompt_tokens}");
    println!("ttft_ms {:.0}", median(firsts));
}

fn main() {
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    // `cargo bench` adds `--bench`; the mode and thread count are the rest.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map_or("speed", String::as_str).to_string();
    let threads: usize = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(2);
    let Some(path) = model_dir()
        .map(|d| smollm2_path(&d))
        .filter(|p| p.is_file())
    else {
        eprintln!("SmolLM2 is not in the model cache; get it with `{FETCH_HINT}`");
        std::process::exit(1);
    };
    match mode.as_str() {
        "speed" => speed(&path, threads, runs),
        "batch" => batch(&path, threads, runs),
        "ttft" => ttft(&path, threads, runs),
        other => {
            eprintln!("unknown mode {other:?}: speed, batch or ttft");
            std::process::exit(2);
        }
    }
}
