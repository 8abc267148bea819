//! The order of a blind turn: shuffled before the models are called, and
//! concealed (label order, no model names) when it is stored.

use crate::error::{PracticeError, Result};

/// Conceals a blind turn's models (see [`crate::conceal_turn`]) and returns
/// the model of each result in the order they are shown.
pub(super) fn concealed_order(turn: &mut crate::store::StoredTurn) -> Vec<String> {
    let mut named: Vec<(i64, String)> = turn
        .results
        .iter()
        .map(|r| (r.response_id, r.model_name.clone()))
        .collect();
    crate::store::conceal_turn(turn, false);
    turn.results
        .iter()
        .map(|r| {
            let at = named.iter().position(|(id, _)| *id == r.response_id);
            at.map(|i| named.swap_remove(i).1).unwrap_or_default()
        })
        .collect()
}

/// `models` in a random order (a blind turn's label order), from the
/// operating system's generator: a student must not be able to predict it.
pub(super) fn shuffled(models: &[String]) -> Result<Vec<String>> {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed)
        .map_err(|e| PracticeError::Corrupt(format!("no random numbers: {e}")))?;
    let mut rng = crate::leaderboard::SplitMix64::new(u64::from_le_bytes(seed));
    let mut order = models.to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    Ok(order)
}
