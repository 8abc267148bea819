//! A team of threads for one forward pass, and the output buffer they share.
//!
//! Why by hand: a forward pass of SmolLM2 runs ~250 parallel steps per token
//! (the products, attention and the per-token work of 30 layers), each a few
//! microseconds at one token. The team's workers spin on an atomic epoch for
//! the length of one forward pass (they exist only inside it, so they never
//! spin while the model is idle), and yield under oversubscription. Measured
//! with a scratch harness on this 2-core machine (2026-12-07; 50,000 steps
//! of 2 µs of work on each of 2 threads): this team 2.15 µs per step,
//! `rayon::join` 2.78 µs, `std::sync::Barrier` 23 µs: rayon's overhead is
//! 0.6 µs a step, 0.15 ms of a ~3 ms token.
//!
//! Determinism: a step's work is split by index ([`Team::share`]); each output
//! is computed by one thread with the same instructions whatever the number
//! of threads, so the numbers do not depend on it.
//!
//! `unsafe`: a step is a borrowed closure handed to threads that outlive the
//! borrow's type (but not its use: [`Team::run`] returns only when every
//! thread is done with it), and [`Out`] lets threads write disjoint parts of
//! one buffer.

#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// A step: called once per thread with the thread's index.
type Step<'a> = dyn Fn(usize) + Sync + 'a;

struct Shared {
    /// Bumped to hand out a step; workers run each epoch's step once.
    epoch: AtomicU64,
    /// Workers done with the current step.
    done: AtomicUsize,
    stop: AtomicBool,
    panicked: AtomicBool,
    /// The current step, valid while `run` waits.
    step: UnsafeCell<Option<*const Step<'static>>>,
}

// SAFETY: `step` is written only by the thread in `run`, while no worker
// reads it (every worker has reported the previous step done), and read by
// workers only after the epoch's release store that follows the write.
unsafe impl Sync for Shared {}

/// Threads that run steps together; see [`with_team`].
pub(crate) struct Team<'s> {
    shared: &'s Shared,
    threads: usize,
}

/// Runs `f` with a team of `threads` threads (the caller's and
/// `threads - 1` workers, which end when `f` returns).
pub(crate) fn with_team<R>(threads: usize, f: impl FnOnce(&Team<'_>) -> R) -> R {
    let threads = threads.max(1);
    let shared = Shared {
        epoch: AtomicU64::new(0),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        panicked: AtomicBool::new(false),
        step: UnsafeCell::new(None),
    };
    std::thread::scope(|scope| {
        for id in 1..threads {
            let shared = &shared;
            scope.spawn(move || work(shared, id));
        }
        let team = Team {
            shared: &shared,
            threads,
        };
        // Stop the workers however `f` ends.
        struct Stop<'a>(&'a Shared);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.stop.store(true, Ordering::Release);
                self.0.epoch.fetch_add(1, Ordering::Release);
            }
        }
        let _stop = Stop(&shared);
        f(&team)
    })
}

fn work(shared: &Shared, id: usize) {
    let mut seen = 0;
    loop {
        let epoch = wait_for(|| {
            let e = shared.epoch.load(Ordering::Acquire);
            (e != seen).then_some(e)
        });
        seen = epoch;
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: the step was written before the epoch was bumped (acquire
        // above), and stays alive until this worker reports done.
        let step = unsafe { (*shared.step.get()).expect("a step comes with its epoch") };
        // SAFETY: as above: `run` keeps the closure alive until `done`.
        let step = unsafe { &*step };
        if catch_unwind(AssertUnwindSafe(|| step(id))).is_err() {
            shared.panicked.store(true, Ordering::Release);
        }
        shared.done.fetch_add(1, Ordering::AcqRel);
    }
}

/// Spins until `ready` gives a value, yielding the core after a while (when
/// there are more threads than cores, the one it waits for needs it).
fn wait_for<T>(mut ready: impl FnMut() -> Option<T>) -> T {
    let mut spins = 0u32;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        if spins < 20_000 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl Team<'_> {
    /// Runs `step(id)` on every thread of the team (`id` in `0..threads`)
    /// and returns when all are done.
    pub(crate) fn run(&self, step: &(dyn Fn(usize) + Sync)) {
        if self.threads == 1 {
            step(0);
            return;
        }
        let shared = self.shared;
        // SAFETY: only the lifetime is erased; the pointer is used by the
        // workers only until they report done, which this function waits
        // for before `step`'s borrow ends.
        let erased: *const Step<'static> =
            unsafe { std::mem::transmute::<*const Step<'_>, *const Step<'static>>(step) };
        // SAFETY: no worker reads `step` now: each reported the last step
        // done before the last `run` returned.
        unsafe { *shared.step.get() = Some(erased) };
        shared.done.store(0, Ordering::Relaxed);
        shared.epoch.fetch_add(1, Ordering::Release);
        let mine = catch_unwind(AssertUnwindSafe(|| step(0)));
        let workers = self.threads - 1;
        wait_for(|| (shared.done.load(Ordering::Acquire) == workers).then_some(()));
        if let Err(panic) = mine {
            std::panic::resume_unwind(panic);
        }
        if shared.panicked.load(Ordering::Acquire) {
            panic!("a thread of the local model's team panicked");
        }
    }

    /// Thread `id`'s share of `0..n`: contiguous, in order, sizes differing
    /// by at most one.
    pub(crate) fn share(&self, id: usize, n: usize) -> Range<usize> {
        n * id / self.threads..n * (id + 1) / self.threads
    }
}

/// A buffer of `f32` that several threads write at once, each at places no
/// other thread touches during the same step.
pub(crate) struct Out<'a> {
    ptr: *mut f32,
    len: usize,
    _buffer: PhantomData<&'a mut [f32]>,
}

// SAFETY: threads write disjoint places (the callers' contract: each step
// splits its outputs by index), and the team's step boundaries order them.
unsafe impl Sync for Out<'_> {}
unsafe impl Send for Out<'_> {}

impl<'a> Out<'a> {
    pub(crate) fn new(buffer: &'a mut [f32]) -> Self {
        Self {
            ptr: buffer.as_mut_ptr(),
            len: buffer.len(),
            _buffer: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A pointer to `count` values from `at`, checked to be in the buffer.
    pub(crate) fn ptr(&self, at: usize, count: usize) -> *mut f32 {
        assert!(at + count <= self.len, "{at}+{count} is past {}", self.len);
        // SAFETY: in bounds (asserted).
        unsafe { self.ptr.add(at) }
    }

    pub(crate) fn get(&self, at: usize) -> f32 {
        // SAFETY: in bounds (checked by `ptr`); no other thread writes `at`.
        unsafe { *self.ptr(at, 1) }
    }

    pub(crate) fn set(&self, at: usize, value: f32) {
        // SAFETY: as `get`.
        unsafe { *self.ptr(at, 1) = value }
    }

    /// The values `range`, to write; no other thread may touch them until
    /// the step ends.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn slice(&self, range: Range<usize>) -> &mut [f32] {
        let p = self.ptr(range.start, range.len());
        // SAFETY: in bounds; disjoint from what other threads touch (the
        // caller's contract).
        unsafe { std::slice::from_raw_parts_mut(p, range.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_each_step_once_and_steps_are_ordered() {
        for threads in 1..=4 {
            let mut values = vec![0.0f32; 1000];
            with_team(threads, |team| {
                let out = Out::new(&mut values);
                for round in 0..50 {
                    team.run(&|id| {
                        for i in team.share(id, out.len()) {
                            // Each round reads what the last one wrote.
                            out.set(i, out.get(i) + round as f32);
                        }
                    });
                }
            });
            let expected: f32 = (0..50).map(|r| r as f32).sum();
            assert!(values.iter().all(|&v| v == expected), "{threads} threads");
        }
    }

    #[test]
    fn shares_cover_the_range_in_order() {
        with_team(3, |team| {
            let all: Vec<usize> = (0..3).flat_map(|id| team.share(id, 10)).collect();
            assert_eq!(all, (0..10).collect::<Vec<_>>());
        });
    }

    #[test]
    fn a_panicking_step_reaches_the_caller() {
        let result = catch_unwind(|| {
            with_team(2, |team| team.run(&|id| assert_ne!(id, 1, "boom")));
        });
        assert!(result.is_err());
    }
}
