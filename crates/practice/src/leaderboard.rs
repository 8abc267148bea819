//! A leaderboard from blind votes: Bradley–Terry scores with bootstrap
//! intervals, vote counts and a win-rate matrix. Pure computation over votes
//! already read from the store; no I/O.
//!
//! # The model
//!
//! Bradley–Terry gives every model a strength `π_i = exp(θ_i)` and says model
//! `i` beats model `j` with probability `π_i / (π_i + π_j)`. A vote becomes
//! pairwise comparisons:
//!
//! - `best = X` over the answers `A, B, C…`: X beats each other answer once; the
//!   pairs that do not involve X are not compared (the student said nothing
//!   about them).
//! - `tie` and `all bad`: every pair of the vote's answers ties.
//! - `skip` compares nothing (skipped votes are counted, never fitted).
//!
//! A tie counts as half a win for each side (the usual convention of arena
//! leaderboards: it keeps the likelihood a plain Bradley–Terry one, with
//! fractional win counts, rather than adding a tie parameter as Davidson or
//! Rao–Kupper do).
//!
//! The log-likelihood is `Σ_{i≠j} W_ij · (θ_i − log(π_i + π_j))`, where `W_ij`
//! is `i`'s (fractional) wins over `j`. On small data it may have no maximum: a
//! model that never lost would get `θ = +∞`, and models in two groups that never
//! met have no common scale. So every model also plays [`Options::prior_ties`]
//! virtual ties against a fixed anchor of strength 1 (`θ = 0`); this is a
//! weak prior that pulls scores towards 0, guarantees a unique finite maximum,
//! and fades as real votes accumulate. With `prior_ties = 0` the fit is the
//! plain maximum-likelihood one (then it exists only when the comparison graph
//! is strongly connected).
//!
//! # The fit
//!
//! Hunter's minorise–maximise (MM) iteration (Hunter 2004, "MM algorithms for
//! generalized Bradley–Terry models", eq. 3):
//! `π_i ← W_i / Σ_j N_ij / (π_i + π_j)`, where `W_i` is all of `i`'s wins and
//! `N_ij` the comparisons of `i` and `j` (the anchor included as a `j`). Each
//! step cannot lower the likelihood, needs no step size and no matrix solve, and
//! works on the aggregated `m × m` count matrix, so its cost does not grow with
//! the number of votes. It stops when no `θ` moves by more than
//! [`TOLERANCE`]. Reported scores are centred (mean 0 over the models shown),
//! since only differences are meaningful; [`Row::rating`] puts them on the
//! familiar Elo-like scale `1000 + 400·θ/ln 10`.
//!
//! # Intervals
//!
//! A percentile bootstrap: [`Options::resamples`] times, draw as many votes as
//! there are, with replacement, refit, and take the 2.5th and 97.5th percentile
//! of each model's centred score. The draws come from a small SplitMix64
//! generator seeded by [`Options::seed`], so the same votes and seed always give
//! the same intervals, on every machine.

use std::collections::BTreeMap;

use serde::Serialize;

/// Stop the fit when no score moves by more than this (in `θ`, natural log).
pub const TOLERANCE: f64 = 1e-12;
/// At most this many MM steps (well-conditioned fits need a few hundred).
const MAX_STEPS: usize = 100_000;

/// What a vote said about the answers of one blind turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// This model's answer was the best.
    Best(String),
    /// Every answer was as good as the others.
    Tie,
    /// Every answer was bad (counted as a tie between all).
    AllBad,
    /// The student gave no verdict.
    Skip,
}

/// One vote: the models whose answers were compared, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteOutcome {
    /// The models of the turn (two or more for a comparison).
    pub models: Vec<String>,
    /// The verdict.
    pub outcome: Outcome,
}

/// How to fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Virtual ties each model plays against an anchor of score 0 (the prior;
    /// see the module docs). Default 1.
    pub prior_ties: f64,
    /// Bootstrap resamples for the intervals; 0 gives no intervals. Default 1000.
    pub resamples: usize,
    /// Seed of the bootstrap draws. Default 0.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            prior_ties: 1.0,
            resamples: 1000,
            seed: 0,
        }
    }
}

/// One model on the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The logical model name.
    pub model_name: String,
    /// The centred Bradley–Terry score `θ` (natural log of the strength).
    pub score: f64,
    /// `score` on an Elo-like scale: `1000 + 400·θ/ln 10`.
    pub rating: f64,
    /// The 2.5th percentile of the bootstrap scores (`null` without resamples).
    pub lower: Option<f64>,
    /// The 97.5th percentile of the bootstrap scores.
    pub upper: Option<f64>,
    /// Votes (skips excluded) in which this model's answer took part.
    pub votes: u64,
    /// Comparisons this model won.
    pub wins: u64,
    /// Comparisons this model lost.
    pub losses: u64,
    /// Comparisons that tied.
    pub ties: u64,
}

/// The win-rate matrix: `win_rate[i][j]` is model `i`'s share of its
/// comparisons with model `j` (ties as half), `null` when they never met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WinMatrix {
    /// The models, in the leaderboard's order.
    pub models: Vec<String>,
    /// `win_rate[i][j]`, in `0..=1`.
    pub win_rate: Vec<Vec<Option<f64>>>,
    /// `comparisons[i][j]`: how often `i` and `j` were compared.
    pub comparisons: Vec<Vec<u64>>,
}

/// A fitted leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leaderboard {
    /// Best first.
    pub rows: Vec<Row>,
    /// Pairwise win rates.
    pub matrix: WinMatrix,
    /// Votes read, skips included.
    pub total_votes: u64,
    /// Votes that were skips.
    pub skipped: u64,
    /// Bootstrap resamples behind the intervals.
    pub resamples: usize,
    /// Their seed.
    pub seed: u64,
    /// The prior's virtual ties per model.
    pub prior_ties: f64,
}

/// Pairwise (fractional) wins: `wins[i][j]` is `i`'s wins over `j`, a tie
/// adding ½ to both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    /// `m × m`.
    pub wins: Vec<Vec<f64>>,
}

impl Counts {
    fn new(m: usize) -> Self {
        Self {
            wins: vec![vec![0.0; m]; m],
        }
    }

    /// Adds one vote's comparisons, with `weight` (how often the vote was drawn).
    fn add(&mut self, vote: &IndexedVote, weight: f64) {
        match vote.best {
            Some(best) => {
                for &other in &vote.models {
                    if other != best {
                        self.wins[best][other] += weight;
                    }
                }
            }
            None => {
                for (k, &a) in vote.models.iter().enumerate() {
                    for &b in &vote.models[k + 1..] {
                        self.wins[a][b] += 0.5 * weight;
                        self.wins[b][a] += 0.5 * weight;
                    }
                }
            }
        }
    }
}

/// A vote over model indexes; `best: None` is a tie of all.
struct IndexedVote {
    models: Vec<usize>,
    best: Option<usize>,
}

/// Maximises the Bradley–Terry log-likelihood of `counts` (with `prior_ties`
/// virtual ties per model against an anchor of score 0) by Hunter's MM
/// iteration; returns the scores `θ`, centred to mean 0.
///
/// With `prior_ties = 0` a model with no win gets a very low score rather than
/// −∞ (its strength shrinks towards 0 until the step limit); give a prior when
/// that can happen.
pub fn fit(counts: &Counts, prior_ties: f64) -> Vec<f64> {
    let m = counts.wins.len();
    if m == 0 {
        return Vec::new();
    }
    // W_i: all of i's wins, the prior's half-wins included.
    let total_wins: Vec<f64> = (0..m)
        .map(|i| counts.wins[i].iter().sum::<f64>() + prior_ties / 2.0)
        .collect();
    // N_ij: comparisons of i and j, in either direction.
    let games: Vec<Vec<f64>> = (0..m)
        .map(|i| {
            (0..m)
                .map(|j| counts.wins[i][j] + counts.wins[j][i])
                .collect()
        })
        .collect();
    let mut strength = vec![1.0_f64; m];
    for _ in 0..MAX_STEPS {
        let mut moved = 0.0_f64;
        let mut next = vec![0.0; m];
        for i in 0..m {
            let mut denominator = prior_ties / (strength[i] + 1.0);
            for j in 0..m {
                if j != i && games[i][j] > 0.0 {
                    denominator += games[i][j] / (strength[i] + strength[j]);
                }
            }
            next[i] = if denominator > 0.0 {
                total_wins[i] / denominator
            } else {
                strength[i]
            };
        }
        if prior_ties == 0.0 {
            // Without the anchor only ratios are defined: keep the geometric
            // mean at 1 so that nothing drifts towards overflow.
            let mean_log = next
                .iter()
                .map(|p| p.max(f64::MIN_POSITIVE).ln())
                .sum::<f64>()
                / m as f64;
            for p in &mut next {
                *p /= mean_log.exp();
            }
        }
        for i in 0..m {
            let before = strength[i].max(f64::MIN_POSITIVE).ln();
            let after = next[i].max(f64::MIN_POSITIVE).ln();
            moved = moved.max((after - before).abs());
        }
        strength = next;
        if moved <= TOLERANCE {
            break;
        }
    }
    centred(
        strength
            .iter()
            .map(|p| p.max(f64::MIN_POSITIVE).ln())
            .collect(),
    )
}

fn centred(mut theta: Vec<f64>) -> Vec<f64> {
    let mean = theta.iter().sum::<f64>() / theta.len().max(1) as f64;
    for t in &mut theta {
        *t -= mean;
    }
    theta
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny, well-mixed generator whose
/// output is fixed by its seed, unlike a library's that may change between
/// versions. Bootstrap draws need reproducibility, not cryptographic quality.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's
    /// multiply-shift with rejection).
    pub fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The `q`-quantile (0..=1) of sorted values, linearly interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// The leaderboard of `votes`: every model that took part in a vote that was
/// not skipped, best first (ties in score by name).
pub fn leaderboard(votes: &[VoteOutcome], options: &Options) -> Leaderboard {
    let skipped = votes.iter().filter(|v| v.outcome == Outcome::Skip).count() as u64;
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for vote in votes.iter().filter(|v| v.outcome != Outcome::Skip) {
        for model in &vote.models {
            names.insert(model.as_str(), 0);
        }
    }
    let model_names: Vec<String> = names.keys().map(|s| s.to_string()).collect();
    for (i, index) in names.values_mut().enumerate() {
        *index = i;
    }
    let indexed: Vec<IndexedVote> = votes
        .iter()
        .filter(|v| v.outcome != Outcome::Skip)
        .filter_map(|v| {
            let mut models: Vec<usize> = v.models.iter().map(|m| names[m.as_str()]).collect();
            models.sort_unstable();
            models.dedup();
            let best = match &v.outcome {
                Outcome::Best(name) => Some(*names.get(name.as_str())?),
                _ => None,
            };
            // One answer compares nothing.
            (models.len() >= 2).then_some(IndexedVote { models, best })
        })
        .collect();
    let m = model_names.len();
    let mut counts = Counts::new(m);
    let mut votes_in = vec![0u64; m];
    let (mut wins, mut losses, mut ties) = (vec![0u64; m], vec![0u64; m], vec![0u64; m]);
    let mut comparisons = vec![vec![0u64; m]; m];
    for vote in &indexed {
        counts.add(vote, 1.0);
        for &a in &vote.models {
            votes_in[a] += 1;
        }
        for (k, &a) in vote.models.iter().enumerate() {
            for &b in &vote.models[k + 1..] {
                match vote.best {
                    Some(best) if best == a => {
                        wins[a] += 1;
                        losses[b] += 1;
                    }
                    Some(best) if best == b => {
                        wins[b] += 1;
                        losses[a] += 1;
                    }
                    Some(_) => continue,
                    None => {
                        ties[a] += 1;
                        ties[b] += 1;
                    }
                }
                comparisons[a][b] += 1;
                comparisons[b][a] += 1;
            }
        }
    }
    let scores = fit(&counts, options.prior_ties);
    let intervals = bootstrap(&indexed, m, options);
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then_with(|| model_names[a].cmp(&model_names[b]))
    });
    let rows = order
        .iter()
        .map(|&i| Row {
            model_name: model_names[i].clone(),
            score: scores[i],
            rating: 1000.0 + 400.0 * scores[i] / std::f64::consts::LN_10,
            lower: intervals.as_ref().map(|iv| iv[i].0),
            upper: intervals.as_ref().map(|iv| iv[i].1),
            votes: votes_in[i],
            wins: wins[i],
            losses: losses[i],
            ties: ties[i],
        })
        .collect();
    let win_rate = order
        .iter()
        .map(|&i| {
            order
                .iter()
                .map(|&j| {
                    let n = counts.wins[i][j] + counts.wins[j][i];
                    (i != j && n > 0.0).then(|| counts.wins[i][j] / n)
                })
                .collect()
        })
        .collect();
    let comparisons = order
        .iter()
        .map(|&i| order.iter().map(|&j| comparisons[i][j]).collect())
        .collect();
    Leaderboard {
        rows,
        matrix: WinMatrix {
            models: order.iter().map(|&i| model_names[i].clone()).collect(),
            win_rate,
            comparisons,
        },
        total_votes: votes.len() as u64,
        skipped,
        resamples: options.resamples,
        seed: options.seed,
        prior_ties: options.prior_ties,
    }
}

/// Percentile-bootstrap 95% intervals of each model's centred score, or
/// `None` without resamples or votes.
fn bootstrap(votes: &[IndexedVote], m: usize, options: &Options) -> Option<Vec<(f64, f64)>> {
    if options.resamples == 0 || votes.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(options.seed);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(options.resamples); m];
    let mut weights = vec![0u32; votes.len()];
    for _ in 0..options.resamples {
        weights.iter_mut().for_each(|w| *w = 0);
        for _ in 0..votes.len() {
            weights[rng.below(votes.len() as u64) as usize] += 1;
        }
        let mut counts = Counts::new(m);
        for (vote, &w) in votes.iter().zip(&weights) {
            if w > 0 {
                counts.add(vote, f64::from(w));
            }
        }
        for (i, theta) in fit(&counts, options.prior_ties).into_iter().enumerate() {
            draws[i].push(theta);
        }
    }
    Some(
        draws
            .into_iter()
            .map(|mut d| {
                d.sort_by(f64::total_cmp);
                (quantile(&d, 0.025), quantile(&d, 0.975))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(models: &[&str], outcome: Outcome) -> VoteOutcome {
        VoteOutcome {
            models: models.iter().map(|s| s.to_string()).collect(),
            outcome,
        }
    }

    #[test]
    fn a_model_that_always_wins_leads_and_skips_are_not_fitted() {
        let votes = vec![
            vote(&["a", "b"], Outcome::Best("a".into())),
            vote(&["a", "b"], Outcome::Best("a".into())),
            vote(&["a", "c"], Outcome::Best("a".into())),
            vote(&["b", "c"], Outcome::Tie),
            vote(&["b", "c", "d"], Outcome::Skip),
        ];
        let board = leaderboard(&votes, &Options::default());
        let names: Vec<_> = board.rows.iter().map(|r| r.model_name.as_str()).collect();
        assert_eq!(names[0], "a");
        assert_eq!(board.rows.len(), 3, "d only appears in a skip");
        assert_eq!(board.skipped, 1);
        assert_eq!(board.rows[0].wins, 3);
        assert_eq!(board.matrix.win_rate[0][0], None);
        let b = board.matrix.models.iter().position(|m| m == "b").unwrap();
        let c = board.matrix.models.iter().position(|m| m == "c").unwrap();
        assert_eq!(board.matrix.win_rate[b][c], Some(0.5));
        assert_eq!(board.matrix.win_rate[0][b], Some(1.0));
        let row = &board.rows[0];
        assert!(row.lower.unwrap() <= row.score && row.score <= row.upper.unwrap());
    }

    #[test]
    fn all_bad_counts_as_a_tie_of_every_pair() {
        let tie = leaderboard(&[vote(&["a", "b", "c"], Outcome::Tie)], &Options::default());
        let bad = leaderboard(
            &[vote(&["a", "b", "c"], Outcome::AllBad)],
            &Options::default(),
        );
        assert_eq!(tie.rows, bad.rows);
        assert!(tie.rows.iter().all(|r| r.score.abs() < 1e-9 && r.ties == 2));
    }

    #[test]
    fn the_same_seed_gives_the_same_intervals() {
        let votes: Vec<_> = (0..50)
            .map(|k| {
                vote(
                    &["a", "b"],
                    Outcome::Best(if k % 3 == 0 { "b" } else { "a" }.into()),
                )
            })
            .collect();
        let options = Options {
            resamples: 100,
            seed: 7,
            ..Options::default()
        };
        assert_eq!(leaderboard(&votes, &options), leaderboard(&votes, &options));
        let other = leaderboard(&votes, &Options { seed: 8, ..options });
        assert_ne!(
            other.rows[0].lower,
            leaderboard(&votes, &options).rows[0].lower
        );
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(1);
        for n in [1u64, 2, 3, 10, 1 << 40] {
            for _ in 0..1000 {
                assert!(rng.below(n) < n);
            }
        }
    }
}
