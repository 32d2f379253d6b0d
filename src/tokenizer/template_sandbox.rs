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
    use std::time::Instant;

    use super::{MEMORY_BUDGET, TIME_LIMIT};

    /// What the child writes ahead of its bytes when `work` panicked.
    const PANICKED: &[u8] = b"\0panicked";

    pub fn run(max_len: usize, work: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, String> {
        let limit = address_space_limit();
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            let why = format!("no pipe: {}", std::io::Error::last_os_error());
            return Ok(in_process(work, &why));
        }
        let [read_end, write_end] = fds;
        // SAFETY: the child only renders (allocating through the fork-safe system allocator),
        // writes to its pipe and leaves with _exit: no locks another thread may have held.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: the descriptors are this process's own; _exit skips atexit handlers and
            // stdio flushes that belong to the parent.
            unsafe {
                libc::close(read_end);
                in_child(limit, write_end, work);
                libc::_exit(0);
            }
        }
        let fork_error = std::io::Error::last_os_error();
        // SAFETY: closing the parent's copy of the write end, so the read sees EOF.
        unsafe { libc::close(write_end) };
        if pid < 0 {
            // SAFETY: as above.
            unsafe { libc::close(read_end) };
            return Ok(in_process(work, &format!("could not fork: {fork_error}")));
        }
        let (bytes, cut_short) = read_until(read_end, max_len);
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
        match status {
            Some(0) if bytes.starts_with(PANICKED) => Err("the template engine panicked".into()),
            Some(0) => Ok(bytes),
            _ => Err(format!(
                "it needed more than {} MiB of memory or crashed",
                MEMORY_BUDGET >> 20
            )),
        }
    }

    /// `work` run here after the sandbox could not be set up (`why`): a device short of memory
    /// may refuse to fork a process holding a large model, and a prompt rendered without the
    /// sandbox beats no prompt.
    fn in_process(work: impl FnOnce() -> Vec<u8>, why: &str) -> Vec<u8> {
        log::warn!("chat template rendered without its sandbox ({why})");
        work()
    }

    /// The address-space limit for the child: what the parent maps now plus the budget, under
    /// any limit already set.
    fn address_space_limit() -> libc::rlim_t {
        let mapped = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            // SAFETY: sysconf has no preconditions.
            .map(|pages| pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64)
            .unwrap_or(0);
        (mapped + MEMORY_BUDGET) as libc::rlim_t
    }

    /// The child's side: quiet, limited, `work`'s bytes down the pipe.
    ///
    /// # Safety
    /// Call only in a freshly forked child that owns `write_end`.
    unsafe fn in_child(
        limit: libc::rlim_t,
        write_end: libc::c_int,
        work: impl FnOnce() -> Vec<u8>,
    ) {
        // SAFETY: plain system calls on this process's own state.
        unsafe {
            // A failed allocation aborts, and the report belongs to the parent, not the terminal.
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null >= 0 {
                libc::dup2(null, 2);
            }
            // Another thread's sandbox child must not hold this pipe open past its own end,
            // nor this one theirs (or a server's sockets): keep only stdio and the pipe.
            close_all_but(write_end);
            // An abort or a stack overflow should end the child, not run the parent's handlers.
            libc::signal(libc::SIGABRT, libc::SIG_DFL);
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_AS, &mut current) == 0 {
                let lowered = libc::rlimit {
                    rlim_cur: limit.min(current.rlim_cur),
                    rlim_max: current.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_AS, &lowered);
            }
        }
        let bytes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|_| PANICKED.to_vec());
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            // SAFETY: writes from a live slice.
            let n = unsafe { libc::write(write_end, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                break;
            }
            rest = &rest[n as usize..];
        }
    }

    /// Closes every descriptor above stderr except `keep`.
    ///
    /// # Safety
    /// Only for a forked child, which uses no other descriptor afterwards.
    unsafe fn close_all_but(keep: libc::c_int) {
        let close_range = |from: libc::c_int, to: libc::c_uint| {
            // SAFETY: close_range takes plain integers; a failure is reported, not undefined.
            unsafe { libc::syscall(libc::SYS_close_range, from as libc::c_uint, to, 0) == 0 }
        };
        let below = keep <= 3 || close_range(3, (keep - 1) as libc::c_uint);
        if !(below && close_range(keep + 1, libc::c_uint::MAX)) {
            // Kernels before 5.9 lack close_range: close the usual range one by one.
            for fd in (3..1024).filter(|&fd| fd != keep) {
                // SAFETY: closing a descriptor number, open or not.
                unsafe { libc::close(fd) };
            }
        }
    }

    /// Reads the pipe to its end, giving up past [`TIME_LIMIT`] or `max_len` bytes (the reason
    /// is the second value).
    fn read_until(fd: libc::c_int, max_len: usize) -> (Vec<u8>, Option<String>) {
        let deadline = Instant::now() + TIME_LIMIT;
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 1 << 16];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let why = format!("it ran longer than {} ms", TIME_LIMIT.as_millis());
                return (bytes, Some(why));
            }
            let mut poll = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis().max(1) as libc::c_int) };
            if ready <= 0 {
                continue; // timed out (checked above) or interrupted
            }
            // SAFETY: reads into a live buffer of its length.
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n == 0 {
                return (bytes, None);
            }
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return (bytes, None);
            }
            bytes.extend_from_slice(&chunk[..n as usize]);
            if bytes.len() > max_len {
                return (bytes, Some(format!("it wrote more than {max_len} bytes")));
            }
        }
    }

    /// Reaps `pid`: its exit code, or None when a signal ended it.
    ///
    /// # Safety
    /// `pid` must be an unreaped child of this process.
    unsafe fn wait(pid: libc::pid_t) -> Option<i32> {
        let mut status = 0;
        loop {
            // SAFETY: the caller's contract.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return None;
            }
        }
        libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::run;

    #[test]
    fn the_child_answers_or_its_end_is_named() {
        let text: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(run(1 << 20, || text.clone()), Ok(text.clone()));
        let e = run(1 << 20, || {
            let mut v: Vec<u8> = Vec::with_capacity(1 << 30);
            v.push(1);
            std::hint::black_box(v)
        })
        .unwrap_err();
        assert!(e.contains("256 MiB of memory"), "{e}");
        let e = run(1 << 20, || {
            std::thread::sleep(std::time::Duration::from_secs(3));
            vec![1]
        })
        .unwrap_err();
        assert!(e.contains("longer than 500 ms"), "{e}");
        let e = run(1 << 20, || panic!("inside")).unwrap_err();
        assert!(e.contains("panicked"), "{e}");
        let e = run(1000, || vec![7; 5000]).unwrap_err();
        assert!(e.contains("more than 1000 bytes"), "{e}");
    }
}
