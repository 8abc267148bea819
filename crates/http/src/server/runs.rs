//! Streamed runs in progress, by id, so that their owner can stop models.
//!
//! The registry lives in this process: a stop reaches the run only through the
//! replica that streams it (the streaming connection pins the run there). With
//! several replicas behind a balancer, route `/user/practice/runs/...` with the
//! same affinity as the stream, or a stop answers 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_practice::StopSignal;

/// The runs being streamed now.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveRuns(Arc<Mutex<HashMap<i64, (i64, StopSignal)>>>);

/// Removes its run from the registry when dropped (the stream ended, or its
/// task was aborted).
pub(crate) struct Registered {
    runs: LiveRuns,
    id: i64,
}

impl Registered {
    /// The run's id.
    pub(crate) fn id(&self) -> i64 {
        self.id
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.runs.lock().remove(&self.id);
    }
}

impl LiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (i64, StopSignal)>> {
        // A panic while holding this lock leaves the map consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a run of `user_id` under a fresh random id. Ids are random,
    /// not counted, so that one user cannot guess another's (the owner is
    /// checked too).
    pub(crate) fn register(&self, user_id: i64, stop: StopSignal) -> Registered {
        let mut runs = self.lock();
        let id = loop {
            let id = random_id();
            if !runs.contains_key(&id) {
                break id;
            }
        };
        runs.insert(id, (user_id, stop));
        Registered {
            runs: self.clone(),
            id,
        }
    }

    /// Stops `model` (all when `None`) of run `id` if `user_id` owns it; false
    /// when there is no such run of that user.
    pub(crate) fn stop(&self, id: i64, user_id: i64, model: Option<&str>) -> bool {
        match self.lock().get(&id) {
            Some((owner, stop)) if *owner == user_id => {
                stop.stop(model);
                true
            }
            _ => false,
        }
    }
}

/// A random id below 2^53: a path id like every other, and one that a
/// JavaScript number holds exactly (a larger one would be rounded in the page
/// and name another run).
fn random_id() -> i64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    (u64::from_le_bytes(bytes) >> 11).max(1) as i64
}
