//! Choosing the next token from the logits: greedy, or seeded sampling with a
//! temperature and nucleus (top-p) cut, as OpenAI-style APIs define them.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Picks tokens for one generation.
#[derive(Debug)]
pub(crate) enum Sampler {
    /// Always the most likely token (the lowest id on ties).
    Greedy,
    /// Sampling from the softmax of `logits / temperature`, cut to the
    /// smallest set of most likely tokens whose mass reaches `top_p`.
    Random {
        temperature: f32,
        top_p: f32,
        /// Boxed: the generator's state is 300 bytes, and most requests in
        /// practice sessions are greedy.
        rng: Box<StdRng>,
    },
}

impl Sampler {
    /// Greedy when `temperature` is 0 (or below 1e-7, or not a number);
    /// otherwise sampling seeded with `seed`.
    pub(crate) fn new(temperature: f64, top_p: f64, seed: u64) -> Self {
        if temperature >= 1e-7 {
            Sampler::Random {
                temperature: temperature as f32,
                top_p: if top_p > 0.0 {
                    top_p.min(1.0) as f32
                } else {
                    1.0
                },
                rng: Box::new(StdRng::seed_from_u64(seed)),
            }
        } else {
            Sampler::Greedy
        }
    }

    /// The next token for these logits.
    pub(crate) fn sample(&mut self, logits: &[f32]) -> u32 {
        match self {
            Sampler::Greedy => argmax(logits),
            Sampler::Random {
                temperature,
                top_p,
                rng,
            } => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut probs: Vec<(u32, f32)> = logits
                    .iter()
                    .enumerate()
                    .map(|(id, &l)| (id as u32, ((l - max) / *temperature).exp()))
                    .collect();
                let total: f32 = probs.iter().map(|(_, p)| p).sum();
                probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                // Keep the most likely tokens until their mass reaches top_p.
                let mut mass = 0.0;
                let keep = probs
                    .iter()
                    .position(|(_, p)| {
                        mass += p / total;
                        mass >= *top_p
                    })
                    .map_or(probs.len(), |i| i + 1);
                probs.truncate(keep);
                let kept: f32 = probs.iter().map(|(_, p)| p).sum();
                let mut target = rng.random::<f32>() * kept;
                for &(id, p) in &probs {
                    if target < p {
                        return id;
                    }
                    target -= p;
                }
                // Rounding can leave a sliver past the last token.
                probs.last().map_or(0, |(id, _)| *id)
            }
        }
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit() {
        assert_eq!(Sampler::new(0.0, 1.0, 1).sample(&[0.1, 3.0, 2.0, 3.0]), 1);
        assert_eq!(Sampler::new(f64::NAN, 1.0, 1).sample(&[0.1, 3.0]), 1);
    }

    #[test]
    fn a_small_top_p_keeps_only_the_most_likely_token() {
        let mut sampler = Sampler::new(1.0, 0.01, 7);
        for _ in 0..50 {
            assert_eq!(sampler.sample(&[1.0, 4.0, 2.0]), 1);
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let draw = |seed| {
            let mut s = Sampler::new(1.0, 1.0, seed);
            (0..40).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        let tokens = draw(5);
        assert!(
            tokens
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 5
        );
    }
}
