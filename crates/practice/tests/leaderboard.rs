//! The leaderboard's Bradley–Terry fit against an independent computation, and
//! its bootstrap intervals' coverage over repeated simulated vote sets.

use sluice_practice::leaderboard::{Options, Outcome, SplitMix64, VoteOutcome, leaderboard};

const MODELS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
/// The true strengths `θ` of the simulation, centred (sum 0), all different.
const TRUE_THETA: [f64; 4] = [0.9, 0.3, -0.2, -1.0];

/// Votes drawn from the Bradley–Terry model with `TRUE_THETA`: each vote shows
/// two or three random models; with three, the winner is drawn with
/// probability proportional to strength (Luce's choice axiom, which reduces to
/// Bradley–Terry for each pair; breaking a best-of-three into pairs is not the
/// exact likelihood, so the coverage test uses pairs only). With `ties`, one
/// vote in ten is a tie.
fn simulate(rng: &mut SplitMix64, n: usize, ties: bool, triples: bool) -> Vec<VoteOutcome> {
    (0..n)
        .map(|k| {
            let size = if triples && k % 4 == 0 { 3 } else { 2 };
            let mut picked: Vec<usize> = Vec::new();
            while picked.len() < size {
                let i = rng.below(MODELS.len() as u64) as usize;
                if !picked.contains(&i) {
                    picked.push(i);
                }
            }
            let models = picked.iter().map(|&i| MODELS[i].to_string()).collect();
            if ties && rng.below(10) == 0 {
                return VoteOutcome {
                    models,
                    outcome: Outcome::Tie,
                };
            }
            let total: f64 = picked.iter().map(|&i| TRUE_THETA[i].exp()).sum();
            let mut u = rng.unit() * total;
            let mut winner = picked[picked.len() - 1];
            for &i in &picked {
                u -= TRUE_THETA[i].exp();
                if u < 0.0 {
                    winner = i;
                    break;
                }
            }
            VoteOutcome {
                models,
                outcome: Outcome::Best(MODELS[winner].to_string()),
            }
        })
        .collect()
}

/// Pairwise fractional wins `w[i][j]`, written again here from the votes (a
/// tie: ½ each way for every pair; a best: one win over each other model).
fn wins(votes: &[VoteOutcome]) -> Vec<Vec<f64>> {
    let index = |name: &str| MODELS.iter().position(|m| *m == name).unwrap();
    let mut w = vec![vec![0.0; MODELS.len()]; MODELS.len()];
    for v in votes {
        let idx: Vec<usize> = v.models.iter().map(|m| index(m)).collect();
        match &v.outcome {
            Outcome::Best(b) => {
                let b = index(b);
                for &o in idx.iter().filter(|&&o| o != b) {
                    w[b][o] += 1.0;
                }
            }
            Outcome::Tie | Outcome::AllBad => {
                for (k, &a) in idx.iter().enumerate() {
                    for &c in &idx[k + 1..] {
                        w[a][c] += 0.5;
                        w[c][a] += 0.5;
                    }
                }
            }
            Outcome::Skip => {}
        }
    }
    w
}

/// The log-likelihood the library says it maximises: pairwise Bradley–Terry
/// with `prior` virtual ties of each model against an anchor at θ = 0.
fn log_likelihood(w: &[Vec<f64>], theta: &[f64], prior: f64) -> f64 {
    let m = theta.len();
    let mut ll = 0.0;
    for i in 0..m {
        for j in 0..m {
            if i != j && w[i][j] > 0.0 {
                let log_sum = (theta[i].exp() + theta[j].exp()).ln();
                ll += w[i][j] * (theta[i] - log_sum);
            }
        }
        let log_sum = (theta[i].exp() + 1.0).ln();
        ll += prior / 2.0 * (theta[i] - log_sum) + prior / 2.0 * (0.0 - log_sum);
    }
    ll
}

/// An independent maximiser: Newton–Raphson on θ with the analytic gradient
/// and Hessian, a backtracking line search on the log-likelihood, and (without
/// a prior) θ_0 pinned to 0 to remove the shift invariance. Returns θ centred.
fn newton(w: &[Vec<f64>], prior: f64) -> Vec<f64> {
    let m = w.len();
    let mut theta = vec![0.0_f64; m];
    let free: Vec<usize> = if prior > 0.0 {
        (0..m).collect()
    } else {
        (1..m).collect()
    };
    for _ in 0..200 {
        let mut grad = vec![0.0; m];
        let mut hess = vec![vec![0.0; m]; m];
        for i in 0..m {
            for j in 0..m {
                if i == j {
                    continue;
                }
                let n = w[i][j] + w[j][i];
                if n == 0.0 {
                    continue;
                }
                let p = 1.0 / (1.0 + (theta[j] - theta[i]).exp());
                grad[i] += w[i][j] - n * p;
                hess[i][i] -= n * p * (1.0 - p);
                hess[i][j] += n * p * (1.0 - p);
            }
            let p = 1.0 / (1.0 + (-theta[i]).exp());
            grad[i] += prior / 2.0 - prior * p;
            hess[i][i] -= prior * p * (1.0 - p);
        }
        // Solve H_ff · step = −g_f by Gaussian elimination with pivoting.
        let k = free.len();
        let mut a: Vec<Vec<f64>> = free
            .iter()
            .map(|&r| {
                let mut row: Vec<f64> = free.iter().map(|&c| hess[r][c]).collect();
                row.push(-grad[r]);
                row
            })
            .collect();
        for col in 0..k {
            let pivot = (col..k)
                .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
                .unwrap();
            a.swap(col, pivot);
            let pivot_row = a[col].clone();
            for (r, row) in a.iter_mut().enumerate() {
                if r != col {
                    let f = row[col] / pivot_row[col];
                    for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                        *x -= f * p;
                    }
                }
            }
        }
        let step: Vec<f64> = (0..k).map(|r| a[r][k] / a[r][r]).collect();
        let before = log_likelihood(w, &theta, prior);
        let mut t = 1.0;
        loop {
            let mut next = theta.clone();
            for (s, &i) in step.iter().zip(&free) {
                next[i] += t * s;
            }
            if log_likelihood(w, &next, prior) >= before || t < 1e-12 {
                theta = next;
                break;
            }
            t /= 2.0;
        }
        if step.iter().all(|s| s.abs() < 1e-14) {
            break;
        }
    }
    let mean = theta.iter().sum::<f64>() / m as f64;
    theta.iter().map(|t| t - mean).collect()
}

fn fitted(votes: &[VoteOutcome], prior: f64) -> Vec<f64> {
    let board = leaderboard(
        votes,
        &Options {
            prior_ties: prior,
            resamples: 0,
            seed: 0,
        },
    );
    MODELS
        .iter()
        .map(|m| {
            board
                .rows
                .iter()
                .find(|r| r.model_name == *m)
                .unwrap()
                .score
        })
        .collect()
}

#[test]
fn scores_rank_the_models_and_match_a_newton_fit() {
    let mut rng = SplitMix64::new(2024);
    let votes = simulate(&mut rng, 3000, true, true);
    let w = wins(&votes);
    for prior in [0.0, 1.0, 5.0] {
        let ours = fitted(&votes, prior);
        let reference = newton(&w, prior);
        for (i, m) in MODELS.iter().enumerate() {
            assert!(
                (ours[i] - reference[i]).abs() < 1e-6,
                "prior {prior}, {m}: MM {} vs Newton {}",
                ours[i],
                reference[i]
            );
        }
        // The true order, strongest first, is the order of MODELS.
        let board = leaderboard(
            &votes,
            &Options {
                prior_ties: prior,
                resamples: 0,
                seed: 0,
            },
        );
        let order: Vec<&str> = board.rows.iter().map(|r| r.model_name.as_str()).collect();
        assert_eq!(order, MODELS, "prior {prior}");
    }
    // The gradient of the log-likelihood vanishes at our fit (a second check
    // that needs no second optimiser): no small move of one score gains.
    let ours = fitted(&votes, 1.0);
    let at = log_likelihood(&w, &ours, 1.0);
    for i in 0..MODELS.len() {
        for h in [1e-4, -1e-4] {
            let mut moved = ours.clone();
            moved[i] += h;
            assert!(log_likelihood(&w, &moved, 1.0) <= at + 1e-9);
        }
    }
}

#[test]
fn bootstrap_intervals_cover_the_true_scores_at_about_the_nominal_rate() {
    // 200 independent vote sets of 400 votes each; each gets 200 bootstrap
    // resamples. Marginal coverage of a 95% interval over 200 × 4 intervals
    // has a binomial standard deviation of about 0.8 points, so [0.90, 0.99]
    // is more than 5 standard deviations wide on both sides: an interval that
    // is too narrow or uselessly wide fails. No prior, so that the estimate
    // targets the true θ without shrinkage.
    let mut rng = SplitMix64::new(99);
    let (mut covered, mut total) = (0usize, 0usize);
    for draw in 0..200u64 {
        let votes = simulate(&mut rng, 400, false, false);
        let board = leaderboard(
            &votes,
            &Options {
                prior_ties: 0.0,
                resamples: 200,
                seed: draw,
            },
        );
        for (i, m) in MODELS.iter().enumerate() {
            let row = board.rows.iter().find(|r| r.model_name == *m).unwrap();
            let (lo, hi) = (row.lower.unwrap(), row.upper.unwrap());
            assert!(lo <= hi);
            total += 1;
            if lo <= TRUE_THETA[i] && TRUE_THETA[i] <= hi {
                covered += 1;
            }
        }
    }
    let rate = covered as f64 / total as f64;
    assert!(
        (0.90..=0.99).contains(&rate),
        "coverage {rate:.3} ({covered}/{total}) is off the nominal 95%"
    );
}
