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
/// generation uses come back from the page cache on first touch.
///
/// Only a mapping seen to hold no anonymous page, resident or swapped out (relocated data,
/// copied-on-write pages: dropping those would lose them), and no device or locked memory is
/// dropped. The caller must be the only thread that may map or unmap files meanwhile (between
/// reading the list and dropping, a range must not change hands): a CPU-only process after
/// loading, not one whose GPU driver threads may load libraries or map cache files.
pub fn release_startup_code() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        for range in clean_file_mappings(&smaps) {
            // SAFETY: the range is a whole file mapping that is not writable, holds no
            // anonymous page (resident or swapped) and is not device or locked memory, so every
            // byte of it is the file's and is read back unchanged on the next access; nothing
            // else maps or unmaps files meanwhile (see above). A refusal only means the pages
            // stay resident.
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

/// One mapping of `/proc/PID/smaps`, as far as [`clean_file_mappings`] needs it.
#[derive(Default)]
struct Mapping {
    range: Option<std::ops::Range<usize>>,
    /// Readable, not writable, and backed by a file that is not a device or a memory file.
    read_only_file: bool,
    /// `Anonymous: 0 kB` was seen.
    no_anonymous: bool,
    /// `Swap: 0 kB` was seen.
    no_swap: bool,
    /// `VmFlags` was seen and names no I/O, PFN, mixed, do-not-dump or locked memory.
    plain_memory: bool,
}

impl Mapping {
    fn clean(&self) -> Option<std::ops::Range<usize>> {
        let ok = self.read_only_file && self.no_anonymous && self.no_swap && self.plain_memory;
        self.range.clone().filter(|_| ok)
    }
}

/// The address ranges of the file mappings in `smaps` (the format of `/proc/PID/smaps`) that
/// [`release_startup_code`] may drop. A mapping qualifies only on evidence: a field it lacks
/// (an older kernel, an emulated `/proc`) leaves it out.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    allow(dead_code, reason = "only Linux has /proc/self/smaps")
)]
fn clean_file_mappings(smaps: &str) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut current = Mapping::default();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some(field) = first.strip_suffix(':') {
            // A field of the current mapping.
            let value = fields.next();
            match field {
                "Anonymous" => current.no_anonymous = value == Some("0"),
                "Swap" => current.no_swap = value == Some("0"),
                "VmFlags" => {
                    current.plain_memory = !line
                        .split_whitespace()
                        .skip(1)
                        .any(|f| matches!(f, "io" | "pf" | "mm" | "dd" | "lo"))
                }
                _ => {}
            }
            continue;
        }
        // A mapping's header: "start-end perms offset dev inode [path]".
        found.extend(current.clean());
        let perms = fields.next().unwrap_or("");
        let path = fields.nth(3).unwrap_or("");
        current = Mapping {
            range: first.split_once('-').and_then(|(a, b)| {
                Some(usize::from_str_radix(a, 16).ok()?..usize::from_str_radix(b, 16).ok()?)
            }),
            read_only_file: perms.starts_with('r')
                && !perms.contains('w')
                && path.starts_with('/')
                && !path.starts_with("/dev/")
                && !path.starts_with("/memfd:"),
            ..Mapping::default()
        };
    }
    found.extend(current.clean());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_file_mappings_are_chosen() {
        let plain = "Swap: 0 kB\nVmFlags: rd ex mr mw me sd\n";
        let smaps = [
            (
                "5600-5700 r--p 00000000 08:01 42   /opt/ember",
                "Anonymous: 0 kB\n",
                plain,
            ),
            (
                "5700-5800 r-xp 00100000 08:01 42   /opt/ember",
                "Anonymous: 0 kB\n",
                plain,
            ),
            // Relocated data, resident or swapped out.
            (
                "5800-5900 r--p 00200000 08:01 42   /opt/ember",
                "Anonymous: 12 kB\n",
                plain,
            ),
            (
                "5a00-5b00 r--p 00200000 08:01 42   /opt/ember",
                "Anonymous: 0 kB\n",
                "Swap: 8 kB\nVmFlags: rd mr mw me\n",
            ),
            (
                "5900-5a00 rw-p 00300000 08:01 42   /opt/ember",
                "Anonymous: 0 kB\n",
                plain,
            ),
            (
                "7f00-7f10 r-xp 00000000 08:01 7    /usr/lib/libc.so.6",
                "Anonymous: 0 kB\n",
                plain,
            ),
            (
                "7f10-7f20 r--p 00000000 00:00 0",
                "Anonymous: 0 kB\n",
                plain,
            ),
            (
                "7f20-7f30 r--s 00000000 08:01 9    /models/a b.gguf",
                "Anonymous: 0 kB\n",
                plain,
            ),
            (
                "7f30-7f40 r--s 00000000 00:05 3    /dev/dri/renderD128",
                "Anonymous: 0 kB\n",
                plain,
            ),
            (
                "7f40-7f50 r-xp 00000000 00:01 4    /memfd:jit (deleted)",
                "Anonymous: 0 kB\n",
                plain,
            ),
            // A driver's buffer outside /dev, and locked pages.
            (
                "7f50-7f60 r--s 00000000 00:0e 5    /dmabuf:",
                "Anonymous: 0 kB\n",
                "Swap: 0 kB\nVmFlags: rd sh mr io pf dd\n",
            ),
            (
                "7f60-7f70 r--p 00000000 08:01 6    /usr/lib/libm.so.6",
                "Anonymous: 0 kB\n",
                "Swap: 0 kB\nVmFlags: rd mr lo\n",
            ),
            // No Anonymous line: not known to be clean.
            (
                "7f70-7f80 r--p 00000000 08:01 8    /usr/lib/libz.so.1",
                "",
                plain,
            ),
            (
                "7ff0-7ff1 r-xp 00000000 00:00 0    [vdso]",
                "Anonymous: 0 kB\n",
                plain,
            ),
        ]
        .map(|(head, anon, rest)| format!("{head}\nRss: 4 kB\n{anon}{rest}"))
        .concat();
        assert_eq!(
            clean_file_mappings(&smaps),
            vec![
                0x5600..0x5700,
                0x5700..0x5800,
                0x7f00..0x7f10,
                0x7f20..0x7f30
            ]
        );
    }
}
