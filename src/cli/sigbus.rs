//! SIGBUS from a model file truncated while mapped: the one file change that cannot be caught
//! between answers ([`ember::ModelFile::check_unchanged`] catches the rest). The process cannot
//! go on — the bytes it was reading are gone — but it ends with a message saying why and how
//! to avoid it, and exit status 1, rather than a bus-error crash.

/// What is said on SIGBUS.
const MESSAGE: &[u8] = b"\nerror: a memory-mapped model file was truncated while in use (SIGBUS); \
install new models by writing them elsewhere and renaming them over the old path\n";

extern "C" fn on_sigbus(_: libc::c_int) {
    // SAFETY: write and _exit are async-signal-safe; MESSAGE is static.
    unsafe {
        libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
        libc::_exit(1);
    }
}

/// Installs the handler (before any thread starts).
pub fn install() {
    // SAFETY: the handler only calls async-signal-safe functions.
    unsafe {
        libc::signal(
            libc::SIGBUS,
            on_sigbus as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}
