//! The CPU backend's thread pool: the calling thread and `threads - 1` workers that spin between
//! jobs, so handing out one op costs about a microsecond rather than a futex wake-up.
//!
//! A decode step is ~300 small parallel ops; a general-purpose pool (rayon's `install`) parks
//! its workers and wakes them per op, which on a 2-core VM cost more than the ops themselves.
//! Here each job bumps an epoch that workers watch; tasks are taken from an atomic counter (the
//! caller takes its share too) and the caller returns once every worker has checked out. The
//! epoch with the job, the counter and each worker's check-out flag sit on cache lines of their
//! own: a job costs a few cache-line transfers between cores (~1.7 µs on this 2-core VM). Workers
//! that see no job for a while ([`SPIN`]) sleep on a condition variable, so an idle process
//! does not burn its cores.
//!
//! In a browser the workers are Web Workers the page started beforehand (see
//! [`super::web_threads`]); everywhere else they are `std` threads.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
use super::web_threads::{self, JoinHandle};
#[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
type JoinHandle = std::thread::JoinHandle<()>;

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// Starts worker `i` of a pool.
#[cfg(not(all(target_arch = "wasm32", target_feature = "atomics")))]
fn spawn(i: usize, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle> {
    std::thread::Builder::new()
        .name(format!("ember-cpu-{}", i + 1))
        .spawn(f)
}

/// Starts worker `i` of a pool, on a thread the page started.
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
fn spawn(_i: usize, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle> {
    web_threads::spawn(f)
}

/// Whether a worker has spun for [`SPIN`] since [`IdleClock::start`].
#[cfg(not(target_arch = "wasm32"))]
struct IdleClock(std::time::Instant);

#[cfg(not(target_arch = "wasm32"))]
impl IdleClock {
    fn start() -> IdleClock {
        IdleClock(std::time::Instant::now())
    }

    fn expired(&mut self) -> bool {
        self.0.elapsed() >= SPIN
    }
}

/// Whether a worker has spun for about [`SPIN`]: WebAssembly's `std` has no clock, so spin
/// rounds are counted. A round is an atomic load and a compare, under a nanosecond in Chromium:
/// at one round per 4 ns the workers fell asleep between a token's ops and two threads ran no
/// faster than one; at four rounds a nanosecond they were 1.5 times as fast (2 cores).
#[cfg(target_arch = "wasm32")]
struct IdleClock(u32);

#[cfg(target_arch = "wasm32")]
impl IdleClock {
    fn start() -> IdleClock {
        IdleClock(0)
    }

    fn expired(&mut self) -> bool {
        self.0 += 1;
        self.0 as u128 > SPIN.as_nanos() * 4
    }
}

/// The job being run: a lifetime-erased pointer to the caller's closure. Only dereferenced while
/// [`Pool::run`] waits for it, which is what makes the erasure sound.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    tasks: usize,
}

// SAFETY: the closure is `Sync` and outlives every use (see `Job`).
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

/// A value alone on its cache line(s), so threads that write different ones do not contend.
#[repr(align(128))]
struct Line<T>(T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// What the caller publishes and the workers read: one cache line changes hands per job.
struct Slot {
    /// Incremented for every job, after `job` is written; workers run the job when it changes.
    epoch: AtomicU64,
    /// The current job; written only by the caller, while no worker is inside a job.
    job: std::cell::UnsafeCell<Option<Job>>,
}

// SAFETY: `job` is written by the caller before the release store of `epoch`, and read by
// workers after the acquire load that sees it; the caller waits for every worker to check out
// before it writes again.
unsafe impl Sync for Slot {}

struct Shared {
    slot: Line<Slot>,
    /// Next task index to take.
    next: Line<AtomicUsize>,
    /// Per worker, the last epoch it finished (each on its own line: one transfer each).
    done: Vec<Line<AtomicU64>>,
    /// Workers asleep on `wake` (changed under `sleep_lock`).
    sleeping: Line<AtomicUsize>,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
    /// Whether a task of the current job panicked (`panic` holds the first).
    panicked: AtomicBool,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// A fixed set of threads running one job at a time (see the module documentation).
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle>,
}

impl Pool {
    /// A pool of `threads` threads in all, the caller's included (at least 1).
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let n = threads.max(1) - 1;
        let shared = Arc::new(Shared {
            slot: Line(Slot {
                epoch: AtomicU64::new(0),
                job: std::cell::UnsafeCell::new(None),
            }),
            next: Line(AtomicUsize::new(0)),
            done: (0..n).map(|_| Line(AtomicU64::new(0))).collect(),
            sleeping: Line(AtomicUsize::new(0)),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            panic: Mutex::new(None),
        });
        let mut pool = Pool {
            shared: Arc::clone(&shared),
            workers: Vec::with_capacity(n),
        };
        for i in 0..n {
            let s = Arc::clone(&shared);
            // On an error, dropping `pool` stops the workers already started.
            pool.workers.push(spawn(i, move || worker(&s, i))?);
        }
        Ok(pool)
    }

    /// Threads in the pool, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0) .. f(tasks - 1)` over the pool's threads and returns when all are done. A
    /// panic in a task is re-raised here.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() || tasks <= 1 {
            (0..tasks).for_each(f);
            return;
        }
        let s = &*self.shared;
        // SAFETY (of the erasure): `f` is only used until every worker has checked out below.
        let f: *const (dyn Fn(usize) + Sync + '_) = f;
        let job = Job {
            f: unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync + 'static),
                >(f)
            },
            tasks,
        };
        // SAFETY: no worker reads the slot now: all finished the previous epoch.
        unsafe { *s.slot.job.get() = Some(job) };
        s.next.store(0, Ordering::Relaxed);
        // SeqCst, paired with the sleeper's: either it sees the new epoch before it waits, or
        // this sees it asleep and wakes it.
        let epoch = s.slot.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        if s.sleeping.load(Ordering::SeqCst) > 0 {
            let _guard = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        take_tasks(s, job);
        for done in &s.done {
            while done.load(Ordering::Acquire) != epoch {
                #[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
                assert!(
                    !web_threads::panicked(),
                    "a CPU thread of the pool panicked"
                );
                std::hint::spin_loop();
            }
        }
        if s.panicked.swap(false, Ordering::Relaxed) {
            let panic = s.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(p) = panic {
                resume_unwind(p);
            }
        }
    }
    /// Calls `f(i, chunk)` for each `chunk_len`-sized chunk `i` of `data` (the last may be
    /// shorter), in parallel.
    pub fn for_chunks<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        self.chunks(data, chunk_len, false, f)
    }

    /// [`Pool::for_chunks`] handing the chunks out from the last to the first: where later
    /// chunks cost more, the threads then finish together.
    pub fn for_chunks_from_last<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        self.chunks(data, chunk_len, true, f)
    }

    fn chunks<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        from_last: bool,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        let (len, chunk_len) = (data.len(), chunk_len.max(1));
        let n = len.div_ceil(chunk_len);
        let base = SendPtr(data.as_mut_ptr());
        self.run(n, &|task| {
            let i = if from_last { n - 1 - task } else { task };
            let start = i * chunk_len;
            let n = chunk_len.min(len - start);
            // SAFETY: tasks have distinct `i`, so the chunks are disjoint and inside `data`,
            // which stays borrowed until `run` returns.
            let chunk = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), n) };
            f(i, chunk)
        });
    }
}

/// A pointer that may cross threads (the chunks it leads to are disjoint).
struct SendPtr<T>(*mut T);
// SAFETY: used only by `for_chunks`, whose tasks touch disjoint elements.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

/// Takes and runs tasks of `job` until none are left, keeping the first panic.
fn take_tasks(s: &Shared, job: Job) {
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= job.tasks {
            return;
        }
        // SAFETY: the caller of `run` keeps the closure alive until every worker checks out.
        let f = unsafe { &*job.f };
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(i))) {
            s.panic
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(p);
            s.panicked.store(true, Ordering::Relaxed);
        }
    }
}

fn worker(s: &Shared, me: usize) {
    let mut seen = 0u64;
    loop {
        let mut idle = IdleClock::start();
        let epoch = loop {
            let e = s.slot.epoch.load(Ordering::Acquire);
            if e != seen || s.stop.load(Ordering::Relaxed) {
                break e;
            }
            if !idle.expired() {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
                continue;
            }
            let mut guard = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleeping.fetch_add(1, Ordering::SeqCst);
            // Re-check after announcing the sleep (see `run`): no wake-up is lost.
            while s.slot.epoch.load(Ordering::SeqCst) == seen && !s.stop.load(Ordering::Relaxed) {
                guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            s.sleeping.fetch_sub(1, Ordering::SeqCst);
            drop(guard);
            idle = IdleClock::start();
        };
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        seen = epoch;
        // SAFETY: the acquire load of `epoch` above orders this after the caller's write, and
        // the caller does not write again before this worker's `done` below.
        if let Some(job) = unsafe { *s.slot.job.get() } {
            take_tasks(s, job);
        }
        s.done[me].store(epoch, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        {
            let _guard = self
                .shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_across_many_jobs() {
        let pool = Pool::new(3).unwrap();
        for tasks in [0, 1, 2, 7, 100] {
            let hits: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                pool.run(tasks, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
        }
    }

    #[test]
    fn chunks_are_disjoint_and_cover_the_slice() {
        let pool = Pool::new(2).unwrap();
        let mut v = vec![0usize; 1001];
        pool.for_chunks(&mut v, 16, |i, c| c.iter_mut().for_each(|x| *x += i + 1));
        for (j, &x) in v.iter().enumerate() {
            assert_eq!(x, j / 16 + 1);
        }
    }

    #[test]
    fn a_task_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = Pool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, &|i| assert!(i != 5, "task 5 fails"));
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.run(8, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn sleeping_workers_wake_for_the_next_job() {
        let pool = Pool::new(2).unwrap();
        std::thread::sleep(SPIN * 3);
        let n = AtomicUsize::new(0);
        pool.run(4, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 4);
    }
}
