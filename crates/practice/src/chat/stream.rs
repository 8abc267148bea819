//! A model call streaming its pieces to whoever holds it, stopped when let go.

use std::future::Future;

use tokio::sync::mpsc::{self, Receiver, Sender};
use tokio::task::JoinHandle;

use crate::provider::ProviderError;

/// A call in progress: its pieces as they come ([`Streamed::next`]), then
/// how it ended ([`Streamed::finish`]).
///
/// The call runs on its own task, so it goes on while its holder waits for
/// something else (a practice run's stop button, a client's socket); dropping
/// the `Streamed` aborts it at its next await, which closes the upstream
/// connection (the upstream stops generating, and billing) or stops a local
/// model's generation. The channel between them is bounded: a holder that
/// does not read holds the call back instead of filling memory.
#[derive(Debug)]
pub struct Streamed<E, T> {
    pieces: Receiver<E>,
    call: Option<JoinHandle<Result<T, ProviderError>>>,
}

impl<E, T> Streamed<E, T>
where
    E: Send + 'static,
    T: Send + 'static,
{
    /// Spawns `call`, which sends its pieces to the sender it is given.
    pub(crate) fn spawn<F, Fut>(in_flight: usize, call: F) -> Self
    where
        F: FnOnce(Sender<E>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + Send + 'static,
    {
        let (tx, pieces) = mpsc::channel(in_flight.max(1));
        Self {
            pieces,
            call: Some(tokio::spawn(call(tx))),
        }
    }
}

impl<E, T> Streamed<E, T> {
    /// The next piece; `None` once the call has sent its last.
    pub async fn next(&mut self) -> Option<E> {
        self.pieces.recv().await
    }

    /// How the call ended, once it ends. Pieces not read yet are dropped
    /// (the call no longer waits for them to be taken). A second call
    /// answers an error.
    pub async fn finish(&mut self) -> Result<T, ProviderError> {
        self.pieces.close();
        let Some(call) = self.call.as_mut() else {
            return Err(ProviderError::Transport {
                message: "the call's outcome was already taken".into(),
            });
        };
        let outcome = call.await.unwrap_or_else(|e| {
            Err(ProviderError::Transport {
                message: format!("the call failed: {e}"),
            })
        });
        self.call = None;
        outcome
    }
}

impl<E, T> Drop for Streamed<E, T> {
    fn drop(&mut self) {
        if let Some(call) = &self.call {
            call.abort();
        }
    }
}
