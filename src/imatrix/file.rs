//! llama.cpp's importance-matrix files. The GGUF format (what `llama-imatrix` writes by default
//! and `llama-quantize --imatrix` reads): `general.type = "imatrix"`, `imatrix.datasets` (the
//! calibration texts), `imatrix.chunk_count` and `imatrix.chunk_size`, and per weight two F32
//! tensors, `<weight>.in_sum2` (`[columns, 1]`: sums of squared activations) and
//! `<weight>.counts` (`[1, 1]`: rows summed; one per expert for mixtures of experts). The legacy
//! `.dat` format: an i32 entry count, then per entry its name (i32 length + bytes), the number
//! of chunks `ncall`, the column count and that many f32 means times `ncall`; optionally the
//! chunk count and the dataset name at the end.

use std::path::Path;

use super::{Entry, ImportanceMatrix};
use crate::error::{Error, Result};
use crate::format::gguf::{GgufFile, MetaValue};
use crate::format::gguf_write::{TensorPlan, write_gguf};
use crate::quant::GgmlType;

const SUMS: &str = ".in_sum2";
const COUNTS: &str = ".counts";

/// Reads an importance matrix in either of llama.cpp's formats.
pub fn read(path: &Path) -> Result<ImportanceMatrix> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // (Not `Error::Format`, which says "invalid model file".)
    let bad = |what: String| {
        Error::Invalid(format!(
            "invalid importance matrix {}: {what}",
            path.display()
        ))
    };
    let mut m = if bytes.starts_with(b"GGUF") {
        let gguf = GgufFile::from_bytes(bytes).map_err(|e| match e {
            Error::Format(what) => bad(what),
            other => other,
        })?;
        read_gguf(gguf).map_err(bad)?
    } else {
        read_legacy(&bytes).map_err(bad)?
    };
    if let Some((name, _)) = m
        .entries
        .iter()
        .find(|(_, e)| e.sum2.iter().any(|v| !v.is_finite() || *v < 0.0))
    {
        return Err(bad(format!(
            "{name} has a negative or non-finite sum of squares"
        )));
    }
    m.source = Some(path.display().to_string());
    Ok(m)
}

fn read_gguf(g: GgufFile) -> std::result::Result<ImportanceMatrix, String> {
    if let Some(t) = g.get("general.type").and_then(MetaValue::as_str)
        && t != "imatrix"
    {
        return Err(format!(
            "a GGUF file of type {t:?}, not an importance matrix"
        ));
    }
    let u32_key = |k: &str| g.get(k).and_then(MetaValue::as_u64).unwrap_or(0) as u32;
    let mut m = ImportanceMatrix {
        chunk_count: u32_key("imatrix.chunk_count"),
        chunk_size: u32_key("imatrix.chunk_size"),
        datasets: g
            .get("imatrix.datasets")
            .and_then(MetaValue::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        ..ImportanceMatrix::default()
    };
    for info in &g.tensors {
        let Some(name) = info.name.strip_suffix(SUMS) else {
            continue;
        };
        let values = |suffix: &str| -> std::result::Result<(Vec<f32>, Vec<usize>), String> {
            let t = g
                .tensor(&format!("{name}{suffix}"))
                .ok_or_else(|| format!("{name} has sums but no counts"))?;
            if t.dtype != GgmlType::F32 {
                return Err(format!("{name}{suffix} is {}, not F32", t.dtype.name()));
            }
            Ok((t.to_f32(), t.shape.clone()))
        };
        let (sums, shape) = values(SUMS)?;
        let (counts, _) = values(COUNTS)?;
        let experts = shape.get(1).copied().unwrap_or(1);
        if counts.len() != experts {
            return Err(format!(
                "{name}: {} counts for {experts} matrices",
                counts.len()
            ));
        }
        // Experts' statistics are pooled: Ember's quantizer takes one importance per column.
        let cols = shape[0];
        let mut sum2 = vec![0.0f64; cols];
        for expert in sums.chunks_exact(cols) {
            for (s, &v) in sum2.iter_mut().zip(expert) {
                *s += f64::from(v);
            }
        }
        let count = counts.iter().map(|&c| c.max(0.0) as u64).sum();
        m.entries.insert(name.to_string(), Entry { sum2, count });
    }
    if m.entries.is_empty() {
        return Err("no importance data (no .in_sum2 tensors)".into());
    }
    Ok(m)
}

/// Little-endian reads with a clear error at the end of the data.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        if self.0.len() < n {
            return Err("truncated legacy imatrix".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i32(&mut self) -> std::result::Result<i32, String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or("truncated legacy imatrix")?;
        self.0 = rest;
        Ok(i32::from_le_bytes(*head))
    }

    /// A count between 1 and `max`.
    fn count(&mut self, what: &str, max: usize) -> std::result::Result<usize, String> {
        let n = self.i32()?;
        if n < 1 || n as usize > max {
            return Err(format!("{what} {n} is out of range"));
        }
        Ok(n as usize)
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let len = self.count("name length", 1 << 16)?;
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }
}

fn read_legacy(bytes: &[u8]) -> std::result::Result<ImportanceMatrix, String> {
    let mut r = Reader(bytes);
    let mut m = ImportanceMatrix::default();
    let n = r.count("entry count", 1 << 20)?;
    for _ in 0..n {
        let name = r.string()?;
        let ncall = r.i32()?.max(0) as u64;
        let cols = r.count("column count", 1 << 24)?;
        let sum2 = r
            .take(4 * cols)?
            .as_chunks::<4>()
            .0
            .iter()
            .map(|&b| f64::from(f32::from_le_bytes(b)))
            .collect();
        // The values are means times `ncall`: with `ncall` as the count they divide back.
        m.entries.insert(name, Entry { sum2, count: ncall });
    }
    if !r.0.is_empty() {
        m.chunk_count = r.i32()?.max(0) as u32;
        if !r.0.is_empty() {
            m.datasets.push(r.string()?);
        }
    }
    Ok(m)
}

/// Writes `m` in llama.cpp's GGUF format (atomically, as every GGUF Ember writes).
pub fn write(m: &ImportanceMatrix, path: &Path) -> Result<()> {
    let meta = vec![
        (
            "general.type".to_string(),
            MetaValue::String("imatrix".into()),
        ),
        (
            "imatrix.datasets".to_string(),
            MetaValue::Array(
                MetaValue::String(String::new()).type_id(),
                m.datasets.iter().cloned().map(MetaValue::String).collect(),
            ),
        ),
        (
            "imatrix.chunk_count".to_string(),
            MetaValue::U32(m.chunk_count),
        ),
        (
            "imatrix.chunk_size".to_string(),
            MetaValue::U32(m.chunk_size),
        ),
    ];
    let entries: Vec<(&String, &Entry)> = m.entries.iter().collect();
    let tensors: Vec<TensorPlan> = entries
        .iter()
        .flat_map(|(name, e)| {
            [
                TensorPlan {
                    name: format!("{name}{SUMS}"),
                    dtype: GgmlType::F32,
                    shape: vec![e.sum2.len(), 1],
                },
                TensorPlan {
                    name: format!("{name}{COUNTS}"),
                    dtype: GgmlType::F32,
                    shape: vec![1, 1],
                },
            ]
        })
        .collect();
    write_gguf(path, &meta, &tensors, |i| {
        let e = entries[i / 2].1;
        let values: Vec<f32> = if i % 2 == 0 {
            e.sum2.iter().map(|&s| s as f32).collect()
        } else {
            vec![e.count as f32]
        };
        Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_round_trips() {
        let mut m = ImportanceMatrix {
            chunk_count: 3,
            chunk_size: 64,
            datasets: vec!["calibration.txt".into()],
            ..ImportanceMatrix::default()
        };
        m.accumulate("blk.0.attn_q.weight", &[1.0, -2.0, 0.5, 3.0, 0.25, -1.0], 3);
        m.accumulate("output.weight", &[0.5; 8], 4);
        let dir = std::env::temp_dir().join(format!("ember-imatrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.gguf");
        write(&m, &path).unwrap();
        let back = read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.source.as_deref(), Some(path.to_str().unwrap()));
        assert_eq!(
            ImportanceMatrix {
                source: None,
                ..back.clone()
            },
            m
        );
        assert_eq!(
            back.importance("blk.0.attn_q.weight").unwrap(),
            vec![(1.0 + 9.0) / 2.0, (4.0 + 0.0625) / 2.0, (0.25 + 1.0) / 2.0]
        );
    }

    #[test]
    fn legacy_files_read_and_bad_ones_are_refused() {
        let mut dat = Vec::new();
        dat.extend(1i32.to_le_bytes());
        dat.extend(5i32.to_le_bytes());
        dat.extend(b"w.abc");
        dat.extend(4i32.to_le_bytes()); // ncall
        dat.extend(2i32.to_le_bytes()); // columns
        dat.extend(8.0f32.to_le_bytes());
        dat.extend(2.0f32.to_le_bytes());
        dat.extend(4i32.to_le_bytes()); // chunks
        dat.extend(4i32.to_le_bytes());
        dat.extend(b"wiki");
        let m = read_legacy(&dat).unwrap();
        assert_eq!(m.importance("w.abc").unwrap(), vec![2.0, 0.5]);
        assert_eq!(
            (m.chunk_count, m.datasets.clone()),
            (4, vec!["wiki".into()])
        );
        for cut in [0, 3, 9, 20, 24] {
            assert!(read_legacy(&dat[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = dat.clone();
        huge[17..21].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(read_legacy(&huge).is_err());
    }
}
