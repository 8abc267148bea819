//! Stopping models of a streamed run while it runs.
//!
//! A [`Streaming`] run carries a [`StopSignal`]; whoever holds a clone may stop
//! one model or all of them. A stopped model's upstream call is dropped (its
//! connection closes, so the upstream stops generating) and what it had sent
//! so far is stored with the finish reason [`STOPPED`].

use std::collections::BTreeSet;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use super::output::RunEvent;

/// The finish reason stored for an answer stopped by the client.
pub const STOPPED: &str = "stopped";

/// Which models were asked to stop.
#[derive(Debug, Default)]
struct Stopped {
    all: bool,
    models: BTreeSet<String>,
}

impl Stopped {
    fn covers(&self, model: &str) -> bool {
        self.all || self.models.contains(model)
    }
}

/// A handle that stops models of one run; clones share it.
///
/// ```
/// let signal = sluice_practice::StopSignal::new();
/// signal.stop(Some("alpha"));
/// assert!(signal.is_stopped("alpha"));
/// assert!(!signal.is_stopped("beta"));
/// signal.stop(None);
/// assert!(signal.is_stopped("beta"));
/// ```
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Sender<Stopped>);

impl Default for StopSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl StopSignal {
    /// A signal that has stopped nothing yet.
    pub fn new() -> Self {
        Self(watch::Sender::new(Stopped::default()))
    }

    /// Stops `model`, or every model of the run when `None`.
    pub fn stop(&self, model: Option<&str>) {
        self.0.send_modify(|stopped| match model {
            Some(name) => {
                stopped.models.insert(name.to_string());
            }
            None => stopped.all = true,
        });
    }

    /// True once `model` was stopped.
    pub fn is_stopped(&self, model: &str) -> bool {
        self.0.borrow().covers(model)
    }

    /// Completes when `model` is stopped (never, if it is not).
    pub(crate) async fn stopped(&self, model: &str) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|s| s.covers(model)).await;
    }
}

/// What a streamed run reports to, and takes stops from.
#[derive(Debug, Clone)]
pub struct Streaming {
    /// Receives the run's events as they happen.
    pub events: UnboundedSender<RunEvent>,
    /// Stops models of the run.
    pub stop: StopSignal,
}

impl From<UnboundedSender<RunEvent>> for Streaming {
    fn from(events: UnboundedSender<RunEvent>) -> Self {
        Self {
            events,
            stop: StopSignal::new(),
        }
    }
}
