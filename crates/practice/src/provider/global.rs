//! A model's global concurrency limit (`global_max_concurrency`): every call
//! holds one of the model's slots leased in the database
//! ([`Store::take_model_slot`]), so replicas on one database together never
//! have more calls in flight than the limit, whatever each one's own
//! `max_concurrency`.
//!
//! A call that finds every slot held waits: it is woken at once when a call of
//! this process ends, and otherwise looks again after a growing pause (10 ms
//! up to 200 ms), since another replica's release is only seen by asking the
//! database. The wait counts against the model's deadline like any queueing.
//! A held slot's lease is extended every third of `global_lease_ms` while the
//! call runs; a slot whose holder died frees itself when its lease runs out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use super::ProviderError;
use crate::store::Store;

/// Where a provider's global limit is kept: the store, once a
/// [`crate::Practice`] (or the embedder) has given it one.
#[derive(Debug, Default)]
pub(crate) struct GlobalSlots {
    store: OnceLock<Store>,
    /// Notified when a call of this process frees a slot.
    freed: Arc<Notify>,
}

/// One held slot; released (in the background) when dropped.
pub(crate) struct GlobalSlot {
    store: Store,
    model: String,
    slot: i64,
    holder: String,
    renewing: tokio::task::JoinHandle<()>,
    freed: Arc<Notify>,
}

/// A name for one holding, unique across replicas and calls.
fn holder_name() -> String {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process =
        PROCESS.get_or_init(|| getrandom::u64().unwrap_or_else(|_| u64::from(std::process::id())));
    format!("{process:016x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl GlobalSlots {
    /// Keeps the slots in `store` from now on; a store given before stays.
    pub(crate) fn attach(&self, store: &Store) {
        let _ = self.store.set(store.clone());
    }

    /// Waits for one of `limit` slots of `model`, leased for `lease` and
    /// extended while the returned guard lives. The caller bounds the wait.
    pub(crate) async fn take(
        &self,
        model: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<GlobalSlot, ProviderError> {
        let Some(store) = self.store.get() else {
            return Err(ProviderError::Transport {
                message: format!(
                    "model {model:?} has global_max_concurrency but no store to keep its slots in"
                ),
            });
        };
        let holder = holder_name();
        let mut pause = Duration::from_millis(10);
        loop {
            // Registered before looking, so a release between the look and
            // the wait is not missed.
            let freed = self.freed.notified();
            let taken = store
                .take_model_slot(model, limit, &holder, lease)
                .await
                .map_err(|e| ProviderError::Transport {
                    message: format!("cannot take a slot of global_max_concurrency: {e}"),
                })?;
            if let Some(slot) = taken {
                return Ok(GlobalSlot::hold(
                    store,
                    model,
                    slot,
                    holder,
                    lease,
                    &self.freed,
                ));
            }
            tokio::select! {
                () = freed => {}
                () = tokio::time::sleep(pause) => pause = (pause * 2).min(Duration::from_millis(200)),
            }
        }
    }
}

impl GlobalSlot {
    fn hold(
        store: &Store,
        model: &str,
        slot: i64,
        holder: String,
        lease: Duration,
        freed: &Arc<Notify>,
    ) -> Self {
        let renewing = tokio::spawn({
            let (store, model, holder) = (store.clone(), model.to_string(), holder.clone());
            async move {
                let every = (lease / 3).max(Duration::from_millis(1));
                loop {
                    tokio::time::sleep(every).await;
                    match store.renew_model_slot(&model, slot, &holder, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(
                                model,
                                slot,
                                "a slot of global_max_concurrency was lost: its lease ran out before it was renewed"
                            );
                            return;
                        }
                        Err(error) => tracing::warn!(
                            model,
                            slot,
                            %error,
                            "cannot renew a slot of global_max_concurrency"
                        ),
                    }
                }
            }
        });
        Self {
            store: store.clone(),
            model: model.to_string(),
            slot,
            holder,
            renewing,
            freed: Arc::clone(freed),
        }
    }
}

impl Drop for GlobalSlot {
    fn drop(&mut self) {
        self.renewing.abort();
        let (store, model, holder, slot) = (
            self.store.clone(),
            std::mem::take(&mut self.model),
            std::mem::take(&mut self.holder),
            self.slot,
        );
        let freed = Arc::clone(&self.freed);
        // Without a runtime (shutting down) the lease simply runs out.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.release_model_slot(&model, slot, &holder).await {
                    tracing::warn!(model, slot, %error, "cannot release a slot of global_max_concurrency; its lease will run out");
                }
                freed.notify_one();
            });
        }
    }
}
