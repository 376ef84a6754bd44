//! A small thread pool for the decode step's matrix–vector products.
//!
//! A decode step makes ~120 short parallel products (40–400 µs each) with serial work between
//! them. rayon's workers fall asleep between such calls and take tens of microseconds to wake,
//! which cost a 2-thread decode a third of its time. These workers spin for a while after each
//! job instead (as llama.cpp's do), then sleep on a condition variable until the next one, so a
//! step keeps them awake and an idle engine does not burn a core.
//!
//! Work is handed out in chunks from an atomic counter, so a thread the OS preempts does not hold
//! up the others. A panic inside a job is caught on the worker and resumed on the caller.

use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_micros(500);

/// A job: called once per participant with the participant's index.
type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped (under `lock`) for every job; workers wait for it to move.
    epoch: AtomicUsize,
    /// The current job, valid while its `run` call has not returned.
    job: UnsafeCell<Option<Job>>,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// A panic of the current job.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Workers asleep on `wake` (or about to be): only then does a job need `lock` and a wake-up
    /// call (a system call even with nobody waiting).
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by `run` before it publishes a new epoch (release) and read by
// workers after they observe that epoch (acquire); `run` does not return, so the closure it
// points to stays alive, until every worker has finished with it (`pending` reaches 0).
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// Worker threads that run a job together with the calling thread.
pub(crate) struct SpinPool {
    shared: Arc<Shared>,
    workers: usize,
    /// Serialises callers: one job at a time.
    running: Mutex<()>,
}

impl SpinPool {
    /// The process-wide pool, sized like rayon's global pool (see `engine::set_num_threads`).
    pub(crate) fn global() -> &'static SpinPool {
        static POOL: OnceLock<SpinPool> = OnceLock::new();
        POOL.get_or_init(|| SpinPool::new(rayon::current_num_threads().saturating_sub(1)))
    }

    fn new(workers: usize) -> Self {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            pending: AtomicUsize::new(0),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut started = 0;
        for i in 0..workers {
            let s = shared.clone();
            let spawned = std::thread::Builder::new().name(format!("smolvlm-decode-{i}")).spawn(move || worker(&s, i + 1));
            if spawned.is_err() {
                break; // run with the threads there are
            }
            started += 1;
        }
        Self { shared, workers: started, running: Mutex::new(()) }
    }

    /// Threads taking part in a job (the caller included).
    pub(crate) fn threads(&self) -> usize {
        self.workers + 1
    }

    /// Calls `f(i)` for `i` in `0..self.threads()`, concurrently (`i = 0` on the calling thread),
    /// and returns when all have returned. A panic in any call is resumed here.
    pub(crate) fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.workers == 0 {
            return f(0);
        }
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // SAFETY: see `Shared`: the pointer is dropped by every worker before this call returns.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f) };
        unsafe { *s.job.get() = Some(job) };
        s.pending.store(self.workers, Ordering::Relaxed);
        // SeqCst with the sleepers' count (see `worker`): either this sees a sleeper, or that
        // worker sees the new epoch before it waits.
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock waits out a worker between its last check and its wait.
            drop(s.lock.lock().unwrap_or_else(|e| e.into_inner()));
            s.wake.notify_all();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
        while s.pending.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
        unsafe { *s.job.get() = None };
        // Taken whatever happens, so a worker's panic never outlives its job (the caller's own
        // panic wins when both failed).
        let worker_panic = s.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = mine.err().or(worker_panic) {
            std::panic::resume_unwind(p);
        }
    }

    /// Calls `f` on every item, the items handed out one at a time from a counter to whichever
    /// of the pool's threads is free (the caller's included), and returns when all are done.
    pub(crate) fn for_each<T: Send>(&self, items: Vec<T>, f: &(dyn Fn(T) + Sync)) {
        if self.workers == 0 || items.len() <= 1 {
            return items.into_iter().for_each(f);
        }
        let slots = Slots(items.into_iter().map(|t| UnsafeCell::new(Some(t))).collect());
        let next = AtomicUsize::new(0);
        self.run(&|_| {
            // SAFETY: the counter hands out each index once.
            while let Some(item) = unsafe { slots.take(next.fetch_add(1, Ordering::Relaxed)) } {
                f(item);
            }
        });
    }
}

/// The items of a [`SpinPool::for_each`], each taken by the one thread that claims its index.
struct Slots<T>(Vec<UnsafeCell<Option<T>>>);
// SAFETY: see `for_each`: a slot is accessed only by the thread that claimed its index, and the
// items are `Send`.
unsafe impl<T: Send> Sync for Slots<T> {}

impl<T> Slots<T> {
    /// Item `i`, or None past the end.
    ///
    /// # Safety
    /// No other thread may take the same `i` (items not taken are dropped with the slots).
    unsafe fn take(&self, i: usize) -> Option<T> {
        self.0.get(i).and_then(|slot| unsafe { (*slot.get()).take() })
    }
}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0;
    loop {
        // Spin for a while, then sleep until the epoch moves.
        let t0 = Instant::now();
        let mut spins = 0u32;
        while s.epoch.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(256) && t0.elapsed() > SPIN {
                let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                while s.epoch.load(Ordering::SeqCst) == seen {
                    g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
        }
        seen = s.epoch.load(Ordering::Acquire);
        // SAFETY: published before the epoch this thread observed; alive until `pending` is 0.
        if let Some(job) = unsafe { *s.job.get() } {
            let f = unsafe { &*job };
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(index))) {
                *s.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            }
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_participant_runs_once_per_job_and_panics_reach_the_caller() {
        let pool = SpinPool::new(3);
        assert_eq!(pool.threads(), 4);
        for _ in 0..200 {
            let hits: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
        // after the workers have gone to sleep
        std::thread::sleep(SPIN * 4);
        let sum = AtomicUsize::new(0);
        pool.run(&|i| {
            sum.fetch_add(i + 1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 1 + 2 + 3 + 4);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.run(&|i| assert!(i != 2, "worker 2 fails"))));
        assert!(r.is_err());
        // the pool still works afterwards
        let sum = AtomicUsize::new(0);
        pool.run(&|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 6);
        // for_each: every item exactly once
        let mut out = vec![0usize; 1000];
        pool.for_each(out.chunks_mut(7).enumerate().collect(), &|(c, o): (usize, &mut [usize])| {
            o.iter_mut().for_each(|v| *v += c + 1)
        });
        assert!(out.iter().enumerate().all(|(i, v)| *v == i / 7 + 1));
    }

    /// When the caller's share and a worker's share of one job both panic, the caller's panic is
    /// resumed and the worker's is dropped with the job: the next, unrelated job succeeds.
    #[test]
    fn a_panic_never_leaks_into_the_next_job() {
        let pool = SpinPool::new(1);
        for _ in 0..20 {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pool.run(&|i| std::panic::panic_any(i));
            }));
            let payload = r.expect_err("the job panicked");
            assert_eq!(payload.downcast_ref::<usize>(), Some(&0), "the caller's own panic is the one resumed");
            let ran = AtomicUsize::new(0);
            pool.run(&|_| {
                ran.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(ran.load(Ordering::Relaxed), 2);
        }
    }
}
