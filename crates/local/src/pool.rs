//! A whole class on one model: concurrent requests share forward passes.
//!
//! Generating is CPU-bound and takes seconds, so it never runs on an async
//! runtime's threads: each [`Pool`] owns one scheduler thread with a
//! [`Batcher`] of `slots` sequences over the one shared [`LocalModel`].
//! A request that arrives joins the running batch at the next step
//! (continuous batching), so eight students generating at once cost about
//! one pass over the weights per token each step, not eight, and each gets
//! the same tokens as it would alone (greedy answers do not depend on who
//! else is generating; see the engine module). Requests start in the order
//! they arrived, each in a free slot with its own key/value cache of
//! [`LocalModel::context_length`] cells; each streams its own tokens; one
//! whose caller went away is stopped at its next token and frees its slot at
//! once. The queue has a fixed size: when it is full,
//! [`Pool::submit`] refuses at once with [`LocalError::Busy`] instead of
//! letting the backlog (and every caller's wait) grow without bound.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::LocalError;
use crate::chat::ChatMessage;
use crate::engine::{Batcher, Request};
use crate::generation::{Event, SamplingParams};
use crate::model::{LocalModel, Prepared};

/// Receives a generation's events on the pool's thread; returning `false` from
/// a [`Event::Text`] stops the generation (the caller went away).
pub type Sink = Box<dyn FnMut(Event) -> bool + Send>;

/// A request on its way to the scheduler: what [`Request`] holds, with a
/// sink that may cross threads.
struct Job {
    prepared: Prepared,
    sink: Sink,
}

impl Job {
    fn into_request(self) -> Request<'static> {
        let Prepared {
            prompt,
            budget,
            sampler,
        } = self.prepared;
        Request {
            prompt,
            budget,
            sampler,
            sink: self.sink,
        }
    }
}

/// One model, up to `slots` generations batched together and room for
/// `limit` requests (running and waiting together).
pub struct Pool {
    model: Arc<LocalModel>,
    queue: Option<Sender<Job>>,
    /// Requests accepted and not yet finished.
    in_flight: Arc<AtomicUsize>,
    slots: usize,
    limit: usize,
    scheduler: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("model", &self.model)
            .field("slots", &self.slots)
            .field("limit", &self.limit)
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish()
    }
}

impl Pool {
    /// Starts the scheduler thread for `model`, running up to `slots`
    /// generations (at least one) in each forward pass and accepting at most
    /// `limit` requests (at least one) at a time.
    pub fn new(model: Arc<LocalModel>, slots: usize, limit: usize) -> Self {
        let (queue, requests) = channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let slots = slots.max(1);
        let scheduler = {
            let model = Arc::clone(&model);
            std::thread::Builder::new()
                .name("sluice-local".into())
                .spawn(move || schedule(&model, slots, &requests))
                .expect("the scheduler thread can be spawned")
        };
        Self {
            model,
            queue: Some(queue),
            in_flight,
            slots,
            limit: limit.max(1),
            scheduler: Some(scheduler),
        }
    }

    /// The model the pool runs.
    pub fn model(&self) -> &LocalModel {
        &self.model
    }

    /// How many requests it accepts at a time.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many generations share a forward pass.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Queues a generation; its events go to `sink` from the pool's thread.
    /// Refuses with [`LocalError::Busy`] (and never calls `sink`) when `limit`
    /// requests are already running or waiting, and with
    /// [`LocalError::PromptTooLong`] when the prompt does not fit the context.
    pub fn submit(
        &self,
        messages: Vec<ChatMessage>,
        params: SamplingParams,
        mut sink: Sink,
    ) -> Result<(), LocalError> {
        // Tokenized here, on the caller's thread, so a long history does not
        // hold up the batch.
        let prepared = self.model.prepare(&messages, &params)?;
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(LocalError::Busy { limit: self.limit });
        }
        let in_flight = Arc::clone(&self.in_flight);
        let job = Job {
            prepared,
            // The slot in the queue is given back before the caller hears
            // `Done`, so a caller may submit again as soon as it does.
            sink: Box::new(move |event: Event| {
                if matches!(event, Event::Done(_)) {
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                }
                sink(event)
            }),
        };
        let queue = self
            .queue
            .as_ref()
            .expect("the queue lives as long as the pool");
        if queue.send(job).is_err() {
            // Only when the scheduler died, which only a bug (a panic in the
            // engine) could cause.
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(LocalError::Stopped);
        }
        Ok(())
    }
}

impl Drop for Pool {
    /// Closes the queue and waits for the scheduler: the requests already
    /// accepted still finish.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(scheduler) = self.scheduler.take() {
            let _ = scheduler.join();
        }
    }
}

fn schedule(model: &LocalModel, slots: usize, requests: &Receiver<Job>) {
    let options = model.options();
    let mut batcher = Batcher::new(
        model.weights(),
        model.tokenizer(),
        slots,
        options.cache_tokens,
        options.threads,
    );
    let mut waiting = VecDeque::new();
    loop {
        if !batcher.is_busy() && waiting.is_empty() {
            match requests.recv() {
                Ok(job) => waiting.push_back(job.into_request()),
                Err(_) => return,
            }
        }
        waiting.extend(requests.try_iter().map(Job::into_request));
        // First come, first served: a request that does not fit yet waits,
        // and so does everyone behind it (no overtaking by short prompts).
        while waiting
            .front()
            .is_some_and(|request| batcher.has_room_for(request))
        {
            let request = waiting.pop_front().expect("front exists");
            batcher.admit(request);
        }
        batcher.step();
    }
}
