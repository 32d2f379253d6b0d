//! Hugging Face model folders: `config.json` plus `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`). Tensors are borrowed from memory maps, like GGUF ones.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::storage::Storage;
use super::tensor::TensorView;
use super::weights::TensorSource;
use crate::arch::{Arch, hf_name};
use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// The tensors of a Hugging Face folder, indexed by their Hugging Face names.
pub struct HfTensors {
    tensors: HashMap<String, TensorView>,
    arch: Arch,
}

/// Reads and parses a JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(format!("{}: {e}", path.display())))
}

fn dtype(d: safetensors::Dtype, name: &str) -> Result<GgmlType> {
    match d {
        safetensors::Dtype::F32 => Ok(GgmlType::F32),
        safetensors::Dtype::F16 => Ok(GgmlType::F16),
        safetensors::Dtype::BF16 => Ok(GgmlType::Bf16),
        other => Err(Error::Unsupported(format!(
            "tensor {name} has safetensors dtype {other:?} (F32, F16 and BF16 are supported)"
        ))),
    }
}

impl HfTensors {
    /// Opens every safetensors file of the folder `dir`, a model of `arch`.
    pub fn open(dir: &Path, arch: Arch) -> Result<HfTensors> {
        let files = shard_files(dir)?;
        let mut tensors = HashMap::new();
        for file in files {
            let storage = Storage::map(&file)?;
            let (header_len, meta) = safetensors::SafeTensors::read_metadata(&storage)
                .map_err(|e| Error::format(format!("{}: {e}", file.display())))?;
            let data_start = 8 + header_len;
            for (name, info) in meta.tensors() {
                let ty = dtype(info.dtype, &name)?;
                // safetensors is row-major: reverse into GGML's fastest-first order.
                let mut shape: Vec<usize> = info.shape.iter().rev().copied().collect();
                if shape.is_empty() {
                    shape.push(1);
                }
                let view = TensorView::new(
                    name.clone(),
                    ty,
                    shape,
                    storage.clone(),
                    data_start + info.data_offsets.0,
                )?;
                tensors.insert(name, view);
            }
        }
        Ok(HfTensors { tensors, arch })
    }
}

/// The safetensors files that make up the model in `dir`.
fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(Error::format(format!(
            "{}: no model.safetensors or model.safetensors.index.json",
            dir.display()
        )));
    }
    let map = read_json(&index)?;
    let weight_map = map["weight_map"]
        .as_object()
        .ok_or_else(|| Error::format(format!("{}: no weight_map", index.display())))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for shard in weight_map.values() {
        let shard = shard
            .as_str()
            .ok_or_else(|| Error::format("weight_map values must be file names"))?;
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(Error::format(format!(
                "weight_map names a file outside the folder: {shard:?}"
            )));
        }
        let path = dir.join(shard);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

impl TensorSource for HfTensors {
    fn tensor(&self, canonical: &str) -> Result<Option<TensorView>> {
        let Some(hf) = hf_name(self.arch, canonical) else {
            return Ok(None);
        };
        let Some(t) = self.tensors.get(&hf) else {
            return Ok(None);
        };
        let mut t = t.clone();
        t.name = canonical.to_string();
        self.arch.def().convert_hf_tensor(t).map(Some)
    }
}
