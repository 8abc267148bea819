//! Speed of the local model on this machine's cores: prompt processing and
//! generation in tokens per second, and the time from start-up (loading the
//! GGUF file) to the first generated token.
//!
//! `cargo bench -p sluice-local --bench local` (needs the model in the cache:
//! `sluice model fetch smollm2`). Each figure is the median of `RUNS` runs
//! (`SLUICE_BENCH_RUNS`, default 5); every run loads the model afresh, so the
//! start-up figure includes reading and preparing the 98 MB file.
//!
//! Then the reason the weights are dequantized at load, side by side in one
//! run: one of the model's Q4_1 matrices multiplied by candle's quantized
//! kernel and by the same matrix dequantized to `f32`, alternating, for one
//! row (a generated token) and for 64 rows (a prompt).

use std::time::{Duration, Instant};

use candle_core::quantized::{QMatMul, gguf_file};
use candle_core::{Device, Module, Tensor};
use sluice_local::fetch::{FETCH_HINT, model_dir, smollm2_path};
use sluice_local::{ChatMessage, LocalModel, SamplingParams};

/// A prompt of a few hundred tokens, so prompt processing is measured on a
/// realistic practice-session prompt rather than on a handful of tokens.
fn prompt() -> Vec<ChatMessage> {
    let knowledge = "Seoul is the capital of South Korea. It lies on the Han River and has about \
                     nine and a half million people. Busan is the second largest city and the \
                     country's largest port. The Korean alphabet, Hangul, was created in 1443. ";
    vec![
        ChatMessage::new(
            "system",
            format!(
                "You answer questions using these notes.\n{}",
                knowledge.repeat(4)
            ),
        ),
        ChatMessage::new(
            "user",
            "Write a long, detailed story about a trip from Seoul to Busan by train.",
        ),
    ]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("SLUICE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let Some(path) = model_dir()
        .map(|d| smollm2_path(&d))
        .filter(|p| p.is_file())
    else {
        eprintln!("SmolLM2 is not in the model cache; get it with `{FETCH_HINT}`");
        std::process::exit(1);
    };
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        max_tokens: 128,
        seed: None,
    };
    let messages = prompt();
    let (mut load, mut first, mut prompt_tps, mut gen_tps) = (vec![], vec![], vec![], vec![]);
    let (mut prompt_tokens, mut generated) = (0, 0);
    for _ in 0..runs {
        let start = Instant::now();
        let model = LocalModel::load(&path).expect("the model loads");
        let loaded = start.elapsed();
        let mut session = model.session();
        let mut first_token: Option<Duration> = None;
        let generation = model
            .generate(&mut session, &messages, &params, |_| {
                first_token.get_or_insert_with(|| start.elapsed());
                true
            })
            .expect("generation succeeds");
        prompt_tokens = generation.prompt_tokens;
        generated = generation.tokens.len();
        load.push(loaded.as_secs_f64() * 1e3);
        first.push(first_token.expect("at least one token").as_secs_f64() * 1e3);
        prompt_tps.push(generation.prompt_tokens as f64 / generation.prompt_time.as_secs_f64());
        // The first token comes from the prompt's logits; the rest each take a
        // forward pass of one token.
        gen_tps
            .push((generation.tokens.len() - 1) as f64 / generation.generation_time.as_secs_f64());
    }
    println!("local model: {} ({runs} runs, medians)", path.display());
    println!(
        "  prompt processing: {:.1} tokens/s ({prompt_tokens} prompt tokens)",
        median(prompt_tps)
    );
    println!(
        "  generation:        {:.1} tokens/s ({generated} tokens, greedy)",
        median(gen_tps)
    );
    println!("  load:              {:.0} ms", median(load));
    println!("  start-up to first token: {:.0} ms", median(first));
    kernels(&path, runs).expect("the kernel comparison runs");
}

/// Candle's Q4_1 kernel against the dequantized `f32` product on one of the
/// model's matrices (`blk.0.ffn_up.weight`, 1536 x 576).
fn kernels(path: &std::path::Path, runs: usize) -> candle_core::Result<()> {
    let device = Device::Cpu;
    let mut file = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut file)?;
    let q = content.tensor(&mut file, "blk.0.ffn_up.weight", &device)?;
    let dtype = q.dtype();
    let dense = q.dequantize(&device)?;
    let quantized = QMatMul::from_qtensor(q)?;
    let dims = dense.dims().to_vec();
    println!("kernels: blk.0.ffn_up.weight ({dtype:?}, {dims:?}), medians of {runs} x 50 calls");
    for rows in [1, 64] {
        let x = Tensor::randn(0f32, 1.0, (rows, dims[1]), &device)?;
        // Both agree before anything is timed (the quantized kernel also
        // rounds the activations to 8 bits, so only roughly).
        let a = quantized.forward(&x)?;
        let b = x.matmul(&dense.t()?)?;
        let diff = (a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = b.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 0.1 * scale, "the products differ: {diff} vs {scale}");
        let (mut q_us, mut f_us) = (vec![], vec![]);
        for _ in 0..runs {
            let time = |f: &dyn Fn() -> candle_core::Result<Tensor>| {
                let start = Instant::now();
                for _ in 0..50 {
                    f()?;
                }
                Ok::<_, candle_core::Error>(start.elapsed().as_secs_f64() * 1e6 / 50.0)
            };
            q_us.push(time(&|| quantized.forward(&x))?);
            f_us.push(time(&|| x.matmul(&dense.t()?))?);
        }
        let (q_us, f_us) = (median(q_us), median(f_us));
        println!(
            "  {rows:>2} row(s): Q4_1 kernel {q_us:.0} us, f32 {f_us:.0} us ({:.1}x)",
            q_us / f_us
        );
    }
    Ok(())
}
