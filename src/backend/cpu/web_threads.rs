//! Threads for the CPU pool in a browser (wasm32 built with shared memory and atomics).
//!
//! WebAssembly cannot start a thread itself: a thread is a Web Worker that the page's JavaScript
//! starts and points at the same module and memory. A browser also starts a worker only once
//! the thread that created it returns to its event loop, so a pool that spawned and then waited
//! would wait forever. The embedding therefore starts its workers first, each calls
//! [`register`] and then [`serve`] (which never returns), and only then builds the engine; the
//! pool's [`spawn`] hands its worker loops to those threads. A spawn with no registered thread
//! free is refused rather than queued, so a pool never waits on a thread that does not exist.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once};

type Task = Box<dyn FnOnce() + Send>;

/// Work handed to the registered threads, and how many of them are not yet claimed.
struct Threads {
    tasks: VecDeque<Task>,
    free: usize,
}

static THREADS: Mutex<Threads> = Mutex::new(Threads {
    tasks: VecDeque::new(),
    free: 0,
});
static WORK: Condvar = Condvar::new();
/// Set by the panic hook when a pool thread panics: under `panic=abort` that thread is gone
/// and never checks out, so the caller waiting for it must stop waiting.
static PANICKED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IS_POOL_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn threads() -> std::sync::MutexGuard<'static, Threads> {
    THREADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts the calling thread (a Web Worker on the shared memory) as free for pools; call it
/// before telling the engine's thread that this one is ready, then call [`serve`].
pub fn register() {
    threads().free += 1;
    IS_POOL_THREAD.with(|t| t.set(true));
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IS_POOL_THREAD.with(|t| t.get()) {
                PANICKED.store(true, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// Runs the work pools hand to this thread, for ever.
pub fn serve() -> ! {
    loop {
        let task = {
            let mut t = threads();
            loop {
                if let Some(task) = t.tasks.pop_front() {
                    break task;
                }
                t = WORK.wait(t).unwrap_or_else(|e| e.into_inner());
            }
        };
        task();
        threads().free += 1;
    }
}

/// Registered threads not claimed by a pool.
pub fn free_threads() -> usize {
    threads().free
}

/// Whether a pool thread has panicked (its pool can no longer finish a job).
pub(super) fn panicked() -> bool {
    PANICKED.load(Ordering::Relaxed)
}

/// Waits for a task handed out by [`spawn`] to end.
pub(super) struct JoinHandle(Arc<(Mutex<bool>, Condvar)>);

impl JoinHandle {
    /// Returns once the task has run.
    pub(super) fn join(self) -> std::thread::Result<()> {
        let (done, ended) = &*self.0;
        let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
        while !*done {
            done = ended.wait(done).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }
}

/// Runs `f` on a registered thread, or fails if none is free.
pub(super) fn spawn(f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle> {
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    let signal = Arc::clone(&state);
    {
        let mut t = threads();
        if t.free == 0 {
            return Err(std::io::Error::other(
                "no free WebAssembly thread (the page starts them before the engine)",
            ));
        }
        t.free -= 1;
        t.tasks.push_back(Box::new(move || {
            f();
            let (done, ended) = &*signal;
            *done.lock().unwrap_or_else(|e| e.into_inner()) = true;
            ended.notify_all();
        }));
    }
    WORK.notify_all();
    Ok(JoinHandle(state))
}
