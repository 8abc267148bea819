//! Generating with the real model: determinism, usage, streaming, the pool's
//! queue limit, cancellation and the context window.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use sluice_local::chat::prompt_ids;
use sluice_local::{
    ChatMessage, Event, FinishReason, Generation, LoadOptions, LocalError, LocalModel, Pool,
    SamplingParams,
};

use crate::support::model;

fn greedy(max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens,
        seed: None,
    }
}

/// A question the quantized model answers. (France was not one with
/// llama.cpp, whose answer depended on the SIMD level it was built for:
/// "Le Grand Château, also known as the City of Light, ..." with AVX-512.
/// sluice's kernels give the same bits on every CPU, and CI runs this test
/// on the portable ones too.)
fn question() -> Vec<ChatMessage> {
    vec![ChatMessage::new("user", "What is the capital of Japan?")]
}

fn generate(model: &LocalModel, params: &SamplingParams) -> Generation {
    model.generate(&question(), params, |_| true).unwrap()
}

#[test]
fn greedy_output_is_deterministic_and_answers() {
    let Some(model) = model() else { return };
    let first = generate(&model, &greedy(24));
    // A different seed changes nothing when greedy.
    let second = generate(
        &model,
        &SamplingParams {
            seed: Some(99),
            ..greedy(24)
        },
    );
    assert_eq!(
        first,
        Generation {
            prompt_time: first.prompt_time,
            generation_time: first.generation_time,
            ..second
        }
    );
    assert!(first.text.contains("Tokyo"), "{:?}", first.text);
}

#[test]
fn usage_counts_the_tokens_generated() {
    let Some(model) = model() else { return };
    let generation = generate(&model, &greedy(5));
    assert_eq!(generation.finish_reason, FinishReason::Length);
    assert_eq!(generation.tokens.len(), 5);
    assert_eq!(
        model.tokenizer().decode(&generation.tokens),
        generation.text
    );
    assert_eq!(
        generation.prompt_tokens,
        prompt_ids(model.tokenizer(), &question()).unwrap().len()
    );
    // An answer that ends by itself stops on <|im_end|>, which is not counted.
    let full = generate(&model, &greedy(200));
    assert_eq!(full.finish_reason, FinishReason::Stop);
    assert!(full.tokens.len() < 200);
    assert_eq!(model.tokenizer().decode(&full.tokens), full.text);
}

#[test]
fn a_seed_makes_sampling_reproducible() {
    let Some(model) = model() else { return };
    let sampled = |seed| SamplingParams {
        temperature: 1.0,
        top_p: 0.95,
        max_tokens: 16,
        seed: Some(seed),
    };
    let a = generate(&model, &sampled(7));
    let b = generate(&model, &sampled(7));
    assert_eq!(a.tokens, b.tokens);
    let others: Vec<Vec<u32>> = (8..12)
        .map(|s| generate(&model, &sampled(s)).tokens)
        .collect();
    assert!(
        others.iter().any(|t| *t != a.tokens),
        "sampling ignores the seed"
    );
}

/// Submits the question and collects the events until `Done`.
fn run(pool: &Pool, params: SamplingParams) -> (Vec<String>, Result<Generation, LocalError>) {
    let (tx, rx) = mpsc::channel();
    pool.submit(question(), params, Box::new(move |e| tx.send(e).is_ok()))
        .unwrap();
    collect(&rx)
}

fn collect(rx: &mpsc::Receiver<Event>) -> (Vec<String>, Result<Generation, LocalError>) {
    let mut texts = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)).unwrap() {
            Event::Text(t) => texts.push(t),
            Event::Done(result) => return (texts, result),
        }
    }
}

#[test]
fn streamed_text_is_the_answer_piece_by_piece() {
    let Some(model) = model() else { return };
    let pool = Pool::new(model, 1, 4);
    let (texts, result) = run(&pool, greedy(24));
    let generation = result.unwrap();
    assert!(texts.len() > 3, "{texts:?}");
    assert_eq!(texts.concat(), generation.text);
}

#[test]
fn a_full_queue_refuses_at_once() {
    let Some(model) = model() else { return };
    let pool = Pool::new(Arc::clone(&model), 1, 1);
    let (tx, rx) = mpsc::channel();
    pool.submit(
        question(),
        greedy(64),
        Box::new(move |e| tx.send(e).is_ok()),
    )
    .unwrap();
    let refused = pool.submit(question(), greedy(4), Box::new(|_| true));
    assert_eq!(refused, Err(LocalError::Busy { limit: 1 }));
    // Once the first one is done there is room again.
    while !matches!(
        rx.recv_timeout(Duration::from_secs(120)).unwrap(),
        Event::Done(_)
    ) {}
    let (_, result) = run(&pool, greedy(2));
    assert_eq!(result.unwrap().tokens.len(), 2);
}

#[test]
fn a_caller_that_goes_away_stops_the_generation() {
    let Some(model) = model() else { return };
    let mut pieces = 0;
    let generation = model
        .generate(&question(), &greedy(200), |_| {
            pieces += 1;
            pieces < 3
        })
        .unwrap();
    assert_eq!(generation.finish_reason, FinishReason::Cancelled);
    assert_eq!(pieces, 3);
    assert!(generation.tokens.len() < 10);
}

#[test]
fn a_prompt_past_the_context_window_is_refused() {
    let Some(model) = model() else { return };
    let long = "word ".repeat(model.context_length());
    let error = model
        .generate(&[ChatMessage::new("user", long)], &greedy(1), |_| true)
        .unwrap_err();
    assert!(
        matches!(error, LocalError::PromptTooLong { limit, .. } if limit == model.context_length() - 1)
    );
}

#[test]
fn greedy_text_is_the_same_on_one_and_two_threads() {
    let Some(model) = model() else { return };
    let on = |threads| {
        let options = LoadOptions {
            threads,
            ..LoadOptions::default()
        };
        LocalModel::load_with(model.path(), options).unwrap()
    };
    let (one, two) = (on(1), on(2));
    let a = generate(&one, &greedy(48));
    let b = generate(&two, &greedy(48));
    assert_eq!(a.tokens, b.tokens, "{:?} vs {:?}", a.text, b.text);
    // Over more than 512 cached tokens too.
    let long = &class()[7];
    let a = one.generate(long, &greedy(32), |_| true).unwrap();
    let b = two.generate(long, &greedy(32), |_| true).unwrap();
    assert_eq!(a.tokens, b.tokens, "{:?} vs {:?}", a.text, b.text);
}

/// Class notes of about 700 tokens: a conversation that carries them runs
/// its attention over more than 512 cached tokens and prompts longer than
/// one step.
fn notes() -> String {
    [
        "The water cycle moves water between the oceans, the air and the land.",
        "Sunlight warms the sea, and water evaporates into vapour that rises.",
        "As the vapour cools high in the air it condenses into clouds.",
        "Rain and snow fall back to the ground, and rivers carry the water to the sea.",
        "Plants return water to the air through their leaves, which is called transpiration.",
    ]
    .iter()
    .cycle()
    .take(50)
    .copied()
    .collect::<Vec<_>>()
    .join(" ")
}

/// Eight different conversations, each a different length; two carry the
/// long notes.
fn class() -> Vec<Vec<ChatMessage>> {
    let mut class: Vec<Vec<ChatMessage>> = [
        "What is the capital of France?",
        "Name three primary colours.",
        "Write one sentence about the sea.",
        "What is 12 times 12?",
        "Give me a synonym for happy.",
        "Why is the sky blue? Answer briefly.",
    ]
    .iter()
    .map(|q| vec![ChatMessage::new("user", *q)])
    .collect();
    for question in ["What makes clouds?", "Where does rain go?"] {
        class.push(vec![
            ChatMessage::new("system", notes()),
            ChatMessage::new("user", question),
        ]);
    }
    class
}

#[test]
fn concurrent_requests_share_the_batch_and_each_streams_its_own_answer() {
    let Some(model) = model() else { return };
    // 1,024 cells a slot: eight slots hold 190 MB of cache.
    let model = Arc::new(
        LocalModel::load_with(
            model.path(),
            LoadOptions {
                cache_tokens: 1024,
                ..LoadOptions::default()
            },
        )
        .unwrap(),
    );
    assert!(prompt_ids(model.tokenizer(), &class()[7]).unwrap().len() > 600);
    let alone: Vec<Generation> = class()
        .iter()
        .map(|m| model.generate(m, &greedy(40), |_| true).unwrap())
        .collect();
    let pool = Pool::new(Arc::clone(&model), 8, 8);
    let receivers: Vec<_> = class()
        .into_iter()
        .map(|messages| {
            let (tx, rx) = mpsc::channel();
            pool.submit(messages, greedy(40), Box::new(move |e| tx.send(e).is_ok()))
                .unwrap();
            rx
        })
        .collect();
    for (rx, alone) in receivers.iter().zip(&alone) {
        let (texts, result) = collect(rx);
        let together = result.unwrap();
        // Each request got its own stream and its own prompt's answer.
        assert_eq!(texts.concat(), together.text);
        assert_eq!(together.prompt_tokens, alone.prompt_tokens);
        // Token for token the answer it gets alone: its own cache, no flash
        // attention, prompts in their own passes (the engine module says why).
        assert_eq!(
            together.tokens, alone.tokens,
            "batched {:?} against alone {:?}",
            together.text, alone.text
        );
    }
}

#[test]
fn a_caller_that_leaves_frees_its_slot_for_the_next() {
    let Some(model) = model() else { return };
    // One slot: the second request can start only once the first is gone.
    let pool = Pool::new(Arc::clone(&model), 1, 2);
    let (tx, first) = mpsc::channel();
    let mut pieces = 0;
    pool.submit(
        question(),
        greedy(400),
        Box::new(move |e| {
            pieces += 1;
            tx.send(e).is_ok() && pieces < 3
        }),
    )
    .unwrap();
    let (tx, second) = mpsc::channel();
    pool.submit(question(), greedy(4), Box::new(move |e| tx.send(e).is_ok()))
        .unwrap();
    let (_, left) = collect(&first);
    let left = left.unwrap();
    assert_eq!(left.finish_reason, FinishReason::Cancelled);
    assert!(left.tokens.len() < 10, "{left:?}");
    let (_, next) = collect(&second);
    assert_eq!(next.unwrap().tokens.len(), 4);
}
