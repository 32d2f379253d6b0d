//! What turns a bad input into a reported failure rather than a slow, silent one: an allocator
//! that refuses any single allocation over [`ALLOC_LIMIT`] (and says which input asked), and a
//! watchdog that ends the run when one input takes longer than [`HANG_LIMIT`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The largest single allocation an input may cause.
pub const ALLOC_LIMIT: usize = 1 << 30;

/// An input running this long is taken for a hang and ends the run.
pub const HANG_LIMIT: Duration = Duration::from_secs(10);

/// The input being run: its index, and its start in milliseconds since [`clock`]'s origin plus
/// one (zero while no input runs).
static CURRENT: AtomicU64 = AtomicU64::new(0);
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// The largest allocation refused, for the report.
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, refusing what is over [`ALLOC_LIMIT`].
pub struct Capped;

// SAFETY: forwards to the system allocator; refusing is returning null, which GlobalAlloc allows.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            refuse(layout.size());
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            refuse(layout.size());
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_LIMIT {
            refuse(new_size);
            return std::ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Notes a refused allocation and says so on stderr without allocating (the process usually
/// aborts next: Rust treats a failed allocation as fatal).
fn refuse(size: usize) {
    REFUSED.fetch_max(size, Ordering::Relaxed);
    let (size_digits, size_len) = decimal(size as u64);
    let (input_digits, input_len) = decimal(CURRENT.load(Ordering::Relaxed));
    say(&[
        b"fuzz: refused an allocation of ",
        &size_digits[..size_len],
        b" bytes at input #",
        &input_digits[..input_len],
        b"\n",
    ]);
}

/// Writes `parts` to stderr as one line, without allocating (from an allocator or a signal
/// handler).
fn say(parts: &[&[u8]]) {
    let mut line = [0u8; 160];
    let mut n = 0;
    for part in parts {
        let take = part.len().min(line.len() - n);
        line[n..n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    // SAFETY: writes n initialized bytes to stderr.
    unsafe {
        libc::write(2, line.as_ptr().cast(), n);
    }
}

/// On SIGABRT — a stack overflow or a failed allocation ends the process that way, past any
/// report the harness could make — names the input that was running.
extern "C" fn on_abort(_: libc::c_int) {
    if STARTED_MS.load(Ordering::Relaxed) != 0 {
        let (digits, len) = decimal(CURRENT.load(Ordering::Relaxed));
        say(&[
            b"fuzz: the process aborted at input #",
            &digits[..len],
            b" (replay it with EMBER_FUZZ_REPLAY)\n",
        ]);
    }
}

/// `v` in decimal, in a stack buffer: (digits, length).
fn decimal(mut v: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    digits[..n].reverse();
    (digits, n)
}

/// The largest allocation refused since the last call (0 if none).
pub fn take_refused() -> usize {
    REFUSED.swap(0, Ordering::Relaxed)
}

fn clock() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Marks input `index` as running (until [`finished`]).
pub fn started(index: u64) {
    CURRENT.store(index, Ordering::Relaxed);
    STARTED_MS.store(clock(), Ordering::Relaxed);
}

/// Marks the input as done.
pub fn finished() {
    STARTED_MS.store(0, Ordering::Relaxed);
}

/// How to replay an input of the target being run (the watchdog's hint).
type Replay = Box<dyn Fn(u64) -> String + Send>;
static REPLAY: std::sync::Mutex<Option<Replay>> = std::sync::Mutex::new(None);

/// Watches the inputs of the target about to run (whose input `i` replays with `replay(i)`): a
/// thread, started once, aborts the run when an input hangs, naming it.
pub fn watch(replay: Replay) {
    *REPLAY.lock().unwrap_or_else(|p| p.into_inner()) = Some(replay);
    static THREAD: std::sync::Once = std::sync::Once::new();
    THREAD.call_once(|| {
        // SAFETY: the handler only reads atomics and writes to stderr (async-signal-safe); the
        // default action (ending the process) follows as the handler returns into abort().
        unsafe {
            libc::signal(
                libc::SIGABRT,
                on_abort as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let since = STARTED_MS.load(Ordering::Relaxed);
                if since != 0 && clock().saturating_sub(since) > HANG_LIMIT.as_millis() as u64 {
                    let index = CURRENT.load(Ordering::Relaxed);
                    let replay = REPLAY.lock().unwrap_or_else(|p| p.into_inner());
                    let how = replay.as_ref().map_or(String::new(), |r| r(index));
                    eprintln!(
                        "fuzz: input #{index} ran over {HANG_LIMIT:?}: a hang. Replay: {how}"
                    );
                    std::process::abort();
                }
            }
        });
    });
}
