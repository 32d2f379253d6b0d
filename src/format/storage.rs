//! Bytes behind a model file: a read-only memory map, or an owned buffer (tests, tiny files).

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Immutable bytes of a whole file, shared by every tensor view borrowed from it.
pub enum Storage {
    /// A read-only memory map: weights are paged in on demand and never copied.
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap, MappedFile),
    /// Bytes held in memory.
    Owned(Vec<u8>),
}

impl Storage {
    /// Reads `path` (the web has no memory maps; pages fetch model bytes themselves).
    #[cfg(target_arch = "wasm32")]
    pub fn map(path: &Path) -> Result<Arc<Storage>> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Ok(Arc::new(Storage::Owned(bytes)))
    }

    /// Maps `path` read-only.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn map(path: &Path) -> Result<Arc<Storage>> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            // Mapping an empty file fails on some platforms; an empty buffer says the same thing.
            return Ok(Arc::new(Storage::Owned(Vec::new())));
        }
        let modified = file.metadata().and_then(|m| m.modified()).ok();
        // SAFETY: the map is read-only. A file replaced by rename leaves this map on the old
        // bytes; one changed in place is caught by `check_unchanged` between uses, and one
        // truncated mid-use raises SIGBUS (see `cli::sigbus` for how that ends).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let mapped = MappedFile {
            path: path.to_path_buf(),
            file,
            modified,
        };
        Ok(Arc::new(Storage::Mapped(map, mapped)))
    }

    /// An error if the mapped file has been truncated or rewritten in place since it was
    /// mapped (its size or modification time changed): its bytes are no longer the model's.
    pub fn check_unchanged(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Storage::Mapped(map, f) = self {
            let meta = f.file.metadata().map_err(|e| Error::io(&f.path, e))?;
            let changed = if meta.len() != map.len() as u64 {
                format!("its size went from {} to {} bytes", map.len(), meta.len())
            } else if meta.modified().ok() != f.modified {
                "it was rewritten".to_string()
            } else {
                return Ok(());
            };
            return Err(Error::Invalid(format!(
                "{} changed while in use ({changed}): install a new model by writing it elsewhere and renaming it over the old path; restart to use it",
                f.path.display()
            )));
        }
        Ok(())
    }
}

/// The file behind a map, kept open to notice it changing.
#[cfg(not(target_arch = "wasm32"))]
pub struct MappedFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    modified: Option<std::time::SystemTime>,
}

impl Storage {
    /// Copies the bytes from `start` into `out`. A mapped file is read with a positional read
    /// from the page cache rather than through the map: a small read through the map faults in a
    /// window of pages around it (the kernel's fault-around, up to 64 KiB), which then stay in the
    /// process's resident memory — reading the norm vectors and the token embedding's rows that
    /// way left megabytes of the file there. A failed read falls back to the map.
    pub fn copy_to(&self, start: usize, out: &mut [u8]) {
        #[cfg(unix)]
        if let Storage::Mapped(_, f) = self {
            use std::os::unix::fs::FileExt;
            if f.file.read_exact_at(out, start as u64).is_ok() {
                return;
            }
        }
        out.copy_from_slice(&self[start..start + out.len()]);
    }

    /// Tells the OS that `range` will not be read again soon: the whole pages inside it leave the
    /// process's resident memory (they are read back from the file if touched again). Used once
    /// a tensor has been repacked into memory of its own, so its bytes are not held twice.
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Storage::Mapped(m, _) = self {
            // SAFETY: sysconf has no preconditions.
            let page =
                usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
            let start = range.start.next_multiple_of(page);
            let end = range.end / page * page;
            if end > start {
                // SAFETY: the map is private and read-only, so dropped pages are re-read from
                // the file unchanged; no reference into them is invalidated. A refusal only
                // means the pages stay resident.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

impl Deref for Storage {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Storage::Mapped(m, _) => m,
            Storage::Owned(v) => v,
        }
    }
}
