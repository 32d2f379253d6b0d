//! Rendering a chat template in a child process with bounded memory and time.
//!
//! A template comes from the model file, and Jinja can build a value that doubles with every
//! statement (`{% set s = s + s %}` thirty times is 1 GiB) or recurse until the stack is gone.
//! minijinja bounds instructions (fuel) and we bound the output, but neither bounds the values
//! in between, and Rust ends the process on a failed allocation. So on Linux and Android the
//! rendering runs in a forked child whose address space may grow by [`MEMORY_BUDGET`] and which
//! is killed after [`TIME_LIMIT`]: whatever the template does, the caller gets text or an error.
//! Elsewhere (macOS, Windows, the browser) it runs in-process, bounded only by fuel and output.

/// How much more address space the child may take than the parent had.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub const MEMORY_BUDGET: u64 = 256 << 20;

/// How long a rendering may take. A real template renders in milliseconds; this stays under
/// the second after which the fuzzer calls an input a hang.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs `work` where it cannot take the process down, returning its bytes, or why it gave none.
/// `max_len` bounds what is read back. Where no child can be made (no pipe, fork refused), it
/// runs in-process, with a warning.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn run(max_len: usize, work: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, String> {
    child::run(max_len, work)
}

/// Runs `work` in-process: no child processes here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn run(_max_len: usize, work: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, String> {
    Ok(work())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod child {
    use std::sync::Mutex;
    use std::time::Instant;

    use super::{MEMORY_BUDGET, TIME_LIMIT};

    /// The child's message: the payload's length (8 bytes, little-endian), then the payload, a
    /// tag byte ([`RENDERED`] or [`PANICKED`]) and `work`'s bytes. Only a complete message
    /// counts: a child cut short mid-write cannot pass off part of a prompt as the whole.
    const RENDERED: u8 = 0;
    const PANICKED: u8 = 1;
    const HEADER: usize = 8;

    /// Held from making a pipe until the parent has closed its write end, so that no other
    /// sandbox child is forked while it is open: one that inherited it would hold it open and
    /// keep this render from seeing the end of its answer.
    static FORKING: Mutex<()> = Mutex::new(());

    pub fn run(max_len: usize, work: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, String> {
        let limit = address_space_limit();
        let guard = FORKING.lock().unwrap_or_else(|p| p.into_inner());
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            let why = format!("no pipe: {}", std::io::Error::last_os_error());
            drop(guard);
            return Ok(in_process(work, &why));
        }
        let [read_end, write_end] = fds;
        // SAFETY: the child renders, writes to its pipe and leaves with _exit. It allocates
        // through the system allocator, which glibc makes fork-safe; a lock another thread held
        // at the fork (a panic hook's stderr, a lazy static being set up) can only stall it, and
        // the parent's deadline ends that.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: the descriptors are this process's own; _exit skips atexit handlers and
            // stdio flushes that belong to the parent.
            unsafe {
                libc::close(read_end);
                let code = in_child(limit, write_end, work);
                libc::_exit(code);
            }
        }
        let fork_error = std::io::Error::last_os_error();
        // SAFETY: closing the parent's copy of the write end, so the read sees EOF.
        unsafe { libc::close(write_end) };
        drop(guard);
        if pid < 0 {
            // SAFETY: as above.
            unsafe { libc::close(read_end) };
            return Ok(in_process(work, &format!("could not fork: {fork_error}")));
        }
        let (message, cut_short) = read_until(read_end, HEADER + 1 + max_len);
        // SAFETY: pid is our child; after a kill the wait reaps it either way.
        let status = unsafe {
            libc::close(read_end);
            if cut_short.is_some() {
                libc::kill(pid, libc::SIGKILL);
            }
            wait(pid)
        };
        if let Some(why) = cut_short {
            return Err(why);
        }
        match complete(&message) {
            Some((RENDERED, bytes)) => Ok(bytes.to_vec()),
            Some(_) => Err("the template engine panicked".into()),
            None => Err(match status {
                Ok(Ending::Signal(libc::SIGSEGV | libc::SIGABRT | libc::SIGBUS)) => format!(
                    "it needed more than {} MiB of memory or overflowed its stack",
                    MEMORY_BUDGET >> 20
                ),
                Ok(Ending::Signal(signal)) => format!("it was ended by signal {signal}"),
                Ok(Ending::Exit(code)) => format!("it exited ({code}) without an answer"),
                Err(e) => format!("its end could not be seen: {e}"),
            }),
        }
    }

    /// The payload of a complete message: (tag, bytes).
    fn complete(message: &[u8]) -> Option<(u8, &[u8])> {
        let (header, payload) = message.split_first_chunk::<HEADER>()?;
        let (&tag, bytes) = payload.split_first()?;
        (u64::from_le_bytes(*header) == payload.len() as u64).then_some((tag, bytes))
    }

    /// `work` run here after the sandbox could not be set up (`why`): a device short of memory
    /// may refuse to fork a process holding a large model, and a prompt rendered without the
    /// sandbox beats no prompt.
    fn in_process(work: impl FnOnce() -> Vec<u8>, why: &str) -> Vec<u8> {
        log::warn!("chat template rendered without its sandbox ({why})");
        work()
    }

    /// The address-space limit for the child: what the parent maps now plus the budget; None
    /// when that is unknown (no /proc), and the child then runs without one.
    fn address_space_limit() -> Option<libc::rlim_t> {
        let pages = std::fs::read_to_string("/proc/self/statm")
            .ok()?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some((pages * page.max(4096) as u64 + MEMORY_BUDGET) as libc::rlim_t)
    }

    /// The child's side: quiet, limited, `work`'s message down the pipe. Returns the exit code
    /// (1 when the message could not be written whole).
    ///
    /// # Safety
    /// Call only in a freshly forked child that owns `write_end`.
    unsafe fn in_child(
        limit: Option<libc::rlim_t>,
        write_end: libc::c_int,
        work: impl FnOnce() -> Vec<u8>,
    ) -> libc::c_int {
        // SAFETY: plain system calls on this process's own state.
        unsafe {
            // A failed allocation aborts, and the report belongs to the parent, not the terminal
            // (unless stderr was closed and the pipe took its number).
            if write_end != 2 {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if null >= 0 {
                    libc::dup2(null, 2);
                }
            }
            // An abort or a stack overflow should end the child, not run the parent's handlers.
            libc::signal(libc::SIGABRT, libc::SIG_DFL);
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if let Some(limit) = limit
                && libc::getrlimit(libc::RLIMIT_AS, &mut current) == 0
            {
                let lowered = libc::rlimit {
                    rlim_cur: limit.min(current.rlim_cur),
                    rlim_max: current.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_AS, &lowered);
            }
        }
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .map(|bytes| (RENDERED, bytes))
            .unwrap_or((PANICKED, Vec::new()));
        let mut message = Vec::with_capacity(HEADER + 1 + payload.1.len());
        message.extend_from_slice(&(1 + payload.1.len() as u64).to_le_bytes());
        message.push(payload.0);
        message.extend_from_slice(&payload.1);
        let mut rest = &message[..];
        while !rest.is_empty() {
            // SAFETY: writes from a live slice.
            let n = unsafe { libc::write(write_end, rest.as_ptr().cast(), rest.len()) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                return 1;
            }
            rest = &rest[n as usize..];
        }
        0
    }

    /// Reads the pipe to its end, giving up past [`TIME_LIMIT`], past `max_len` bytes or on an
    /// error (the reason is the second value; the child is then killed).
    fn read_until(fd: libc::c_int, max_len: usize) -> (Vec<u8>, Option<String>) {
        let deadline = Instant::now() + TIME_LIMIT;
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 1 << 16];
        let failed = |what: &str| Some(format!("{what}: {}", std::io::Error::last_os_error()));
        let interrupted =
            || std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = format!(
                    "it ran longer than {} ms (a slow template, or stalled)",
                    TIME_LIMIT.as_millis()
                );
                return (bytes, Some(why));
            }
            let mut poll = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis().max(1) as libc::c_int) };
            if ready < 0 && !interrupted() {
                return (bytes, failed("waiting for its answer failed"));
            }
            if ready <= 0 {
                continue; // timed out (checked above) or interrupted
            }
            // SAFETY: reads into a live buffer of its length.
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n == 0 {
                return (bytes, None);
            }
            if n < 0 {
                if interrupted() {
                    continue;
                }
                return (bytes, failed("reading its answer failed"));
            }
            bytes.extend_from_slice(&chunk[..n as usize]);
            if bytes.len() > max_len {
                let why = format!("it wrote more than {} bytes", max_len - HEADER - 1);
                return (bytes, Some(why));
            }
        }
    }

    /// How a child ended.
    enum Ending {
        Exit(i32),
        Signal(i32),
    }

    /// Reaps `pid`.
    ///
    /// # Safety
    /// `pid` must be an unreaped child of this process.
    unsafe fn wait(pid: libc::pid_t) -> std::io::Result<Ending> {
        let mut status = 0;
        loop {
            // SAFETY: the caller's contract.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                break;
            }
            let e = std::io::Error::last_os_error();
            if r < 0 && e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(if libc::WIFSIGNALED(status) {
            Ending::Signal(libc::WTERMSIG(status))
        } else {
            Ending::Exit(libc::WEXITSTATUS(status))
        })
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::run;

    #[test]
    fn the_child_answers_or_its_end_is_named() {
        let text: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(run(1 << 20, || text.clone()), Ok(text.clone()));
        // qemu-user, which runs the aarch64 tests in CI, ignores RLIMIT_AS: there a gigabyte of
        // address space is granted, and only the other limits can be checked.
        let refused = run(16, || {
            // SAFETY: maps (and at once unmaps) fresh anonymous memory in the child.
            let mapped = unsafe {
                let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
                let p = libc::mmap(std::ptr::null_mut(), 1 << 30, libc::PROT_READ, flags, -1, 0);
                p != libc::MAP_FAILED && libc::munmap(p, 1 << 30) == 0
            };
            vec![u8::from(!mapped)]
        });
        if refused == Ok(vec![1]) {
            let e = run(1 << 20, || {
                let mut v: Vec<u8> = Vec::with_capacity(1 << 30);
                v.push(1);
                std::hint::black_box(v)
            })
            .unwrap_err();
            assert!(
                e.contains("256 MiB of memory or overflowed its stack"),
                "{e}"
            );
        } else {
            assert_eq!(refused, Ok(vec![0]));
            eprintln!("RLIMIT_AS is not enforced here (an emulator?): memory limit not checked");
        }
        let e = run(1 << 20, || {
            std::thread::sleep(std::time::Duration::from_secs(3));
            vec![1]
        })
        .unwrap_err();
        assert!(e.contains("longer than 500 ms"), "{e}");
        // SAFETY: ends the forked child, as a crash in it would.
        let e = run(1 << 20, || unsafe { libc::_exit(3) }).unwrap_err();
        assert!(e.contains("exited (3) without an answer"), "{e}");
        let e = run(1 << 20, || panic!("inside")).unwrap_err();
        assert!(e.contains("panicked"), "{e}");
        let e = run(1000, || vec![7; 5000]).unwrap_err();
        assert!(e.contains("more than 1000 bytes"), "{e}");
    }
}
