//! What the process keeps resident once a model is loaded: heap freed while loading, and the
//! pages of code, constants and files that only loading read.
//!
//! Both matter because a small model's memory is mostly fixed costs: for the 135M default model
//! (92 MiB of weights) loading leaves a few MiB of freed heap and about 8 MiB of the binary's
//! pages resident (the kernel maps up to 64 KiB around each page of code it faults in), where
//! generation itself needs about 2 MiB of the binary.

/// Hands heap memory freed while opening a model back to the OS. Building the tokenizer and
/// reading the file's metadata allocate and free many small tables; glibc keeps such freed
/// memory in the process, where it would sit under the weights and raise the peak resident size
/// of every run by that much.
pub fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops the resident pages of never-written file mappings — the program's and its libraries'
/// code and read-only constants, the model file's pages — once a model is loaded: command-line
/// parsing, GGUF parsing, tokenizer building and weight repacking do not run again, and the pages
/// generation uses come back from the page cache on first touch. A mapping any page of which
/// was ever written (relocated data, copied-on-write pages) is left alone, as are devices.
pub fn release_startup_code() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        for range in clean_file_mappings(&smaps) {
            // SAFETY: the range is a whole file mapping that is not writable and holds no
            // anonymous (copied-on-write) page, so every byte of it is the file's and is read
            // back unchanged on the next access; no reference is invalidated. A refusal only
            // means the pages stay resident.
            unsafe {
                libc::madvise(
                    range.start as *mut libc::c_void,
                    range.end - range.start,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

/// The address ranges of the file mappings in `smaps` (the format of `/proc/PID/smaps`) that are
/// not writable and have no anonymous pages; devices and memory files excluded.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    allow(dead_code, reason = "only Linux has /proc/self/smaps")
)]
fn clean_file_mappings(smaps: &str) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut current: Option<std::ops::Range<usize>> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some(field) = first.strip_suffix(':') {
            // A field of the current mapping.
            if field == "Anonymous" && fields.next() != Some("0") {
                current = None;
            }
            continue;
        }
        // A mapping's header: "start-end perms offset dev inode [path]".
        found.extend(current.take());
        let perms = fields.next().unwrap_or("");
        let path = fields.nth(3).unwrap_or("");
        let range = first.split_once('-').and_then(|(a, b)| {
            Some(usize::from_str_radix(a, 16).ok()?..usize::from_str_radix(b, 16).ok()?)
        });
        let file =
            path.starts_with('/') && !path.starts_with("/dev/") && !path.starts_with("/memfd:");
        if file && perms.starts_with('r') && !perms.contains('w') {
            current = range;
        }
    }
    found.extend(current);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_file_mappings_are_chosen() {
        let smaps = "\
5600-5700 r--p 00000000 08:01 42   /opt/ember
Rss:                 400 kB
Anonymous:             0 kB
5700-5800 r-xp 00100000 08:01 42   /opt/ember
Anonymous:             0 kB
5800-5900 r--p 00200000 08:01 42   /opt/ember
Anonymous:            12 kB
5900-5a00 rw-p 00300000 08:01 42   /opt/ember
Anonymous:             0 kB
7f00-7f10 r-xp 00000000 08:01 7    /usr/lib/libc.so.6
Anonymous:             0 kB
7f10-7f20 r--p 00000000 00:00 0
Anonymous:             0 kB
7f20-7f30 r--s 00000000 08:01 9    /models/a b.gguf
Anonymous:             0 kB
7f30-7f40 r--s 00000000 00:05 3    /dev/dri/renderD128
Anonymous:             0 kB
7f40-7f50 r-xp 00000000 00:01 4    /memfd:jit (deleted)
Anonymous:             0 kB
7ff0-7ff1 r-xp 00000000 00:00 0    [vdso]
";
        assert_eq!(
            clean_file_mappings(smaps),
            vec![
                0x5600..0x5700,
                0x5700..0x5800,
                0x7f00..0x7f10,
                0x7f20..0x7f30
            ]
        );
    }
}
