//! How much memory this process may still take: what the KV cache of a context is checked
//! against before it is allocated (an abort or the OOM killer later tells the user nothing).

use crate::error::{Error, Result};

/// The environment variable that caps the memory Ember counts on (bytes, or with a K, M, G or
/// T suffix in powers of 1024): room left for the other programs of a device.
pub const LIMIT_VAR: &str = "EMBER_MEMORY_LIMIT";

/// Bytes this process can still allocate without swapping: the least of the system's
/// `MemAvailable`, what the process's cgroup (v2 or v1, as containers set) has left, and
/// [`LIMIT_VAR`]. `None` when none of them is known.
pub fn available() -> Result<Option<u64>> {
    let limit = match std::env::var(LIMIT_VAR) {
        Ok(text) => Some(parse_size(&text).ok_or_else(|| {
            Error::Invalid(format!(
                "{LIMIT_VAR}={text:?} is not a size (bytes, or a number with K, M, G or T)"
            ))
        })?),
        Err(_) => None,
    };
    Ok([system_available(), cgroup_left(), limit]
        .into_iter()
        .flatten()
        .min())
}

/// Linux's `MemAvailable` from `/proc/meminfo`.
fn system_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The cgroup's limit less its usage (v2 `memory.max`/`memory.current`, else v1
/// `memory.limit_in_bytes`/`memory.usage_in_bytes`); `None` when unlimited or unknown.
fn cgroup_left() -> Option<u64> {
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let (limit, usage) = match read("/sys/fs/cgroup/memory.max") {
        Some(limit) => (limit, read("/sys/fs/cgroup/memory.current")?),
        None => (
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?,
            read("/sys/fs/cgroup/memory/memory.usage_in_bytes")?,
        ),
    };
    // v1 spells "no limit" as a huge page-rounded number (v2 as "max", which does not parse).
    (limit < 1 << 60).then(|| limit.saturating_sub(usage))
}

/// "512M", "2G", "1048576": a size in bytes, suffixes in powers of 1024.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return None,
            };
            (&text[..i], shift)
        }
        _ => (text, 0),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size(" 2g "), Some(2 << 30));
        assert_eq!(parse_size("3T"), Some(3 << 40));
        for bad in ["", "G", "1.5G", "12X", "-1", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
