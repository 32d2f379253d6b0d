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
