//! The CPU backend's thread pool: the calling thread and `threads - 1` workers that spin between
//! jobs, so handing out one op costs about a microsecond rather than a futex wake-up.
//!
//! A decode step is ~300 small parallel ops; a general-purpose pool (rayon's `install`) parks
//! its workers and wakes them per op, which on a 2-core VM cost more than the ops themselves.
//! Here each job bumps an epoch that workers watch; tasks are taken from an atomic counter (the
//! caller takes its share too) and the caller returns once every worker has checked out. Workers
//! that see no job for a while ([`SPIN`]) sleep on a condition variable, so an idle process
//! does not burn its cores.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// The job being run: a lifetime-erased pointer to the caller's closure. Only dereferenced while
/// [`Pool::run`] waits for it, which is what makes the erasure sound.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    tasks: usize,
}

// SAFETY: the closure is `Sync` and outlives every use (see `Job`).
unsafe impl Send for Job {}

struct Shared {
    /// Incremented for every job; workers run the job when it changes.
    epoch: AtomicU64,
    job: Mutex<Option<Job>>,
    /// Next task index to take.
    next: AtomicUsize,
    /// Workers still inside the current job.
    busy: AtomicUsize,
    /// Workers asleep on `wake`.
    sleeping: Mutex<usize>,
    wake: Condvar,
    stop: AtomicBool,
    /// The first panic of a task in the current job, re-raised by the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// A fixed set of threads running one job at a time (see the module documentation).
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of `threads` threads in all, the caller's included (at least 1).
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            next: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            sleeping: Mutex::new(0),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            panic: Mutex::new(None),
        });
        let workers = (1..threads.max(1))
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("ember-cpu-{i}"))
                    .spawn(move || worker(&s))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Pool { shared, workers })
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
        // SAFETY (of the erasure): `f` is only used until `busy` drops to zero below.
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
        *s.job.lock().expect("pool lock") = Some(job);
        s.next.store(0, Ordering::Relaxed);
        s.busy.store(self.workers.len(), Ordering::Relaxed);
        s.epoch.fetch_add(1, Ordering::Release);
        if *s.sleeping.lock().expect("pool lock") > 0 {
            s.wake.notify_all();
        }
        take_tasks(s, job);
        while s.busy.load(Ordering::Acquire) > 0 {
            std::hint::spin_loop();
        }
        *s.job.lock().expect("pool lock") = None;
        let panic = s.panic.lock().expect("pool lock").take();
        if let Some(p) = panic {
            resume_unwind(p);
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
        let (len, chunk_len) = (data.len(), chunk_len.max(1));
        let base = SendPtr(data.as_mut_ptr());
        self.run(len.div_ceil(chunk_len), &|i| {
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
            s.panic.lock().expect("pool lock").get_or_insert(p);
        }
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        let mut idle_since = Instant::now();
        let epoch = loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen || s.stop.load(Ordering::Relaxed) {
                break e;
            }
            if idle_since.elapsed() < SPIN {
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
                continue;
            }
            let mut sleeping = s.sleeping.lock().expect("pool lock");
            *sleeping += 1;
            // Re-check under the lock `run` takes before notifying: no wake-up is lost.
            while s.epoch.load(Ordering::Acquire) == seen && !s.stop.load(Ordering::Relaxed) {
                sleeping = s.wake.wait(sleeping).expect("pool lock");
            }
            *sleeping -= 1;
            idle_since = Instant::now();
        };
        if s.stop.load(Ordering::Relaxed) {
            return;
        }
        seen = epoch;
        let job = *s.job.lock().expect("pool lock");
        if let Some(job) = job {
            take_tasks(s, job);
        }
        s.busy.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        {
            let _sleeping = self.shared.sleeping.lock().expect("pool lock");
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
