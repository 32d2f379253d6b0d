//! Bytes behind a model file: a read-only memory map, or an owned buffer (tests, tiny files).

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Immutable bytes of a whole file, shared by every tensor view borrowed from it.
pub enum Storage {
    /// A read-only memory map: weights are paged in on demand and never copied.
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
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
        // SAFETY: the map is read-only. Model files are not expected to change while mapped; if
        // one is truncated underneath us the OS raises SIGBUS, as for every mmap-based loader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Ok(Arc::new(Storage::Mapped(map)))
    }
}

impl Storage {
    /// Tells the OS that `range` will not be read again soon: the whole pages inside it leave the
    /// process's resident memory (they are read back from the file if touched again). Used once
    /// a tensor has been repacked into memory of its own, so its bytes are not held twice.
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Storage::Mapped(m) = self {
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
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }
}
