//! A bounded pool of blocking generation threads around one shared model.
//!
//! Generating is CPU-bound and takes seconds, so it never runs on an async
//! runtime's threads: each [`Pool`] owns a few plain threads, each with a
//! [`Session`] over the one shared [`LocalModel`]. Requests wait in a queue of a
//! fixed size; when it is full, [`Pool::submit`] refuses at once with
//! [`LocalError::Busy`] instead of letting the backlog (and every caller's
//! wait) grow without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::LocalError;
use crate::chat::ChatMessage;
use crate::model::{Generation, LocalModel, SamplingParams};

/// What a generation reports to its caller.
#[derive(Debug)]
pub enum Event {
    /// A piece of the answer, as soon as it is complete UTF-8.
    Text(String),
    /// The end: the whole generation or why it failed. Always the last event.
    Done(Result<Generation, LocalError>),
}

/// Receives a generation's events on the pool's thread; returning `false` from
/// a [`Event::Text`] stops the generation (the caller went away).
pub type Sink = Box<dyn FnMut(Event) -> bool + Send>;

struct Job {
    messages: Vec<ChatMessage>,
    params: SamplingParams,
    sink: Sink,
}

/// One model, `workers` generation threads and room for `limit` requests
/// (running and waiting together).
pub struct Pool {
    model: Arc<LocalModel>,
    queue: Option<Sender<Job>>,
    /// Requests accepted and not yet finished.
    in_flight: Arc<AtomicUsize>,
    limit: usize,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("model", &self.model)
            .field("workers", &self.workers.len())
            .field("limit", &self.limit)
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish()
    }
}

impl Pool {
    /// Starts `workers` threads (at least one) sharing `model`, accepting at
    /// most `limit` requests (at least one) at a time.
    pub fn new(model: Arc<LocalModel>, workers: usize, limit: usize) -> Self {
        let (queue, jobs) = channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let workers = (0..workers.max(1))
            .map(|i| {
                let model = Arc::clone(&model);
                let jobs = Arc::clone(&jobs);
                let in_flight = Arc::clone(&in_flight);
                std::thread::Builder::new()
                    .name(format!("sluice-local-{i}"))
                    .spawn(move || work(&model, &jobs, &in_flight))
                    .expect("a generation thread can be spawned")
            })
            .collect();
        Self {
            model,
            queue: Some(queue),
            in_flight,
            limit: limit.max(1),
            workers,
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

    /// Queues a generation; its events go to `sink` from a pool thread.
    /// Refuses with [`LocalError::Busy`] (and never calls `sink`) when `limit`
    /// requests are already running or waiting.
    pub fn submit(
        &self,
        messages: Vec<ChatMessage>,
        params: SamplingParams,
        sink: Sink,
    ) -> Result<(), LocalError> {
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(LocalError::Busy { limit: self.limit });
        }
        let job = Job {
            messages,
            params,
            sink,
        };
        let queue = self
            .queue
            .as_ref()
            .expect("the queue lives as long as the pool");
        if queue.send(job).is_err() {
            // Only when every worker died, which a panic in candle could cause.
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(LocalError::Stopped);
        }
        Ok(())
    }
}

impl Drop for Pool {
    /// Closes the queue and waits for the threads: the jobs already queued
    /// still finish.
    fn drop(&mut self) {
        self.queue = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(model: &LocalModel, jobs: &Mutex<Receiver<Job>>, in_flight: &AtomicUsize) {
    let mut session = model.session();
    loop {
        // The lock is held only while waiting for the next job, never while
        // generating. A poisoned lock cannot happen: nothing panics under it.
        let next = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(Job {
            messages,
            params,
            mut sink,
        }) = next
        else {
            return;
        };
        let result = model.generate(&mut session, &messages, &params, |text| {
            sink(Event::Text(text.to_string()))
        });
        in_flight.fetch_sub(1, Ordering::AcqRel);
        sink(Event::Done(result));
    }
}
