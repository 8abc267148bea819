//! Generating with the real model: determinism, usage, streaming, the pool's
//! queue limit, cancellation and the context window.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use sluice_local::chat::prompt_ids;
use sluice_local::{
    ChatMessage, Event, FinishReason, Generation, LocalError, LocalModel, Pool, SamplingParams,
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

fn question() -> Vec<ChatMessage> {
    vec![ChatMessage::new("user", "What is the capital of France?")]
}

fn generate(model: &LocalModel, params: &SamplingParams) -> Generation {
    let mut session = model.session();
    model
        .generate(&mut session, &question(), params, |_| true)
        .unwrap()
}

#[test]
fn greedy_output_is_deterministic_and_answers() {
    let Some(model) = model() else { return };
    let first = generate(&model, &greedy(24));
    // A different seed and a fresh session change nothing when greedy.
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
    assert!(first.text.contains("Paris"), "{:?}", first.text);
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

/// Submits `messages` and collects the events until `Done`.
fn run(pool: &Pool, params: SamplingParams) -> (Vec<String>, Result<Generation, LocalError>) {
    let (tx, rx) = mpsc::channel();
    pool.submit(question(), params, Box::new(move |e| tx.send(e).is_ok()))
        .unwrap();
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
    let mut session = model.session();
    let mut pieces = 0;
    let generation = model
        .generate(&mut session, &question(), &greedy(200), |_| {
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
    let mut session = model.session();
    let long = "word ".repeat(model.context_length());
    let error = model
        .generate(
            &mut session,
            &[ChatMessage::new("user", long)],
            &greedy(1),
            |_| true,
        )
        .unwrap_err();
    assert!(
        matches!(error, LocalError::PromptTooLong { limit, .. } if limit == model.context_length() - 1)
    );
}
