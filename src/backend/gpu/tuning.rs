//! Per-adapter kernel choices and the on-disk cache `ember tune` writes them to. The decode
//! kernels come in shapes that suit different devices (rows split over threads or whole rows per
//! thread; attention split over the context or a workgroup per head); which is faster depends on
//! the adapter, its driver and the model's shapes, so it is measured on the device, remembered
//! under that key, and applied by later runs. Without an entry the backend keeps its defaults per
//! device type.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AdapterReport;
use crate::error::{Error, Result};
use crate::format::ModelFile;

/// The decode kernel shapes `ember tune` chooses between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    /// One-token mat-vecs split each weight row over several threads (matvec_lanes.wgsl);
    /// otherwise each thread computes whole rows.
    pub split_rows: bool,
    /// One-token attention split over chunks of the context (attention_decode.wgsl); otherwise
    /// a workgroup per query head (attention.wgsl).
    pub split_attention: bool,
    /// With split rows, integer-format mat-vecs on 8-bit activations (quant/chunk_dot_i8.wgsl).
    #[serde(default)]
    pub int8: bool,
    /// With split rows, threads per row (`LANES`; 0: the adapter's default); a 64-thread
    /// workgroup then computes 64 / lanes rows.
    #[serde(default)]
    pub lanes: u32,
    /// With split rows, rows each group of lanes computes, sharing its activation loads (one of
    /// [`GROUP_ROWS`]; 0 in caches written before the choice existed: 1).
    #[serde(default)]
    pub group_rows: u32,
    /// Prefill tile shape, weight rows x tokens (one of
    /// [`TILE_CHOICES`](super::shaders::TILE_CHOICES); absent: the default).
    #[serde(default)]
    pub tiles: (u32, u32),
    /// The prefill tiles hold f16 and multiply in f16 (needs shader-f16).
    #[serde(default)]
    pub tile_f16: bool,
}

/// The rows per group of lanes `ember tune` chooses between.
pub const GROUP_ROWS: [u32; 3] = [1, 2, 4];

impl Tuning {
    /// The decode kernel choices, each with this tuning's prefill tiles: split rows with each of
    /// `lanes` threads per row and each of [`GROUP_ROWS`] rows per group of them, on 8-bit
    /// activations too where `int8` says the adapter has them, and whole rows; each with both
    /// attentions.
    pub fn decode_choices(self, int8: bool, lanes: &[u32]) -> Vec<Tuning> {
        let mut rows: Vec<(bool, bool, u32, u32)> = Vec::new();
        for &l in lanes {
            for g in GROUP_ROWS {
                rows.push((true, false, l, g));
                if int8 {
                    rows.push((true, true, l, g));
                }
            }
        }
        rows.push((false, false, 0, 0));
        rows.into_iter()
            .flat_map(|(split_rows, int8, lanes, group_rows)| {
                [true, false].map(|split_attention| Tuning {
                    split_rows,
                    split_attention,
                    int8,
                    lanes,
                    group_rows,
                    ..self
                })
            })
            .collect()
    }

    /// The prefill tile choices, each with this tuning's decode kernels: every shape of
    /// [`TILE_CHOICES`](super::shaders::TILE_CHOICES) in f32, and in f16 too where `f16`.
    pub fn prefill_choices(self, f16: bool) -> Vec<Tuning> {
        let types: &[bool] = if f16 { &[false, true] } else { &[false] };
        super::shaders::TILE_CHOICES
            .iter()
            .flat_map(|&tiles| {
                types.iter().map(move |&tile_f16| Tuning {
                    tiles,
                    tile_f16,
                    ..self
                })
            })
            .collect()
    }

    /// A short description, e.g. `split rows x16 (2 per group, int8), per-head attention,
    /// prefill tiles 64x32`.
    pub fn describe(&self) -> String {
        let rows = if self.split_rows {
            let mut notes = Vec::new();
            if self.group_rows > 1 {
                notes.push(format!("{} per group", self.group_rows));
            }
            if self.int8 {
                notes.push("int8".to_string());
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join(", "))
            };
            format!("split rows x{}{notes}", self.lanes)
        } else {
            "whole rows".to_string()
        };
        let attention = if self.split_attention {
            "split attention"
        } else {
            "per-head attention"
        };
        let (tr, tt) = self.tiles;
        let f16 = if self.tile_f16 { " (f16)" } else { "" };
        format!("{rows}, {attention}, prefill tiles {tr}x{tt}{f16}")
    }
}

/// What a tuning result is valid for: the adapter as the driver reports it, the device-limit
/// profile imposed on it, and the model's shapes and weight formats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TuneKey {
    /// Graphics API (Vulkan, Metal, …).
    pub backend: String,
    /// Adapter name.
    pub adapter: String,
    /// Driver name and version.
    pub driver: String,
    /// Device-limit profile, if one was imposed.
    pub profile: Option<String>,
    /// The model's shapes and weight formats ([`model_shape`]).
    pub model: String,
}

impl TuneKey {
    /// The key for `model` on the adapter of `report`.
    pub fn new(report: &AdapterReport, model: &ModelFile) -> TuneKey {
        TuneKey {
            backend: report.backend.clone(),
            adapter: report.name.clone(),
            driver: report.driver.clone(),
            profile: report.profile.clone(),
            model: model_shape(model),
        }
    }
}

/// The shapes that decide which kernels win: widths, heads, layers and the weight formats.
pub fn model_shape(model: &ModelFile) -> String {
    let c = &model.config;
    let mut types: Vec<&str> = model
        .weights
        .all()
        .iter()
        .filter(|t| t.rows() > 1)
        .map(|t| t.dtype.name())
        .collect();
    types.sort_unstable();
    types.dedup();
    format!(
        "{:?} hidden {} ffn {} layers {} heads {}/{} x {} vocab {} {}",
        c.arch,
        c.hidden,
        c.ffn,
        c.layers,
        c.heads,
        c.kv_heads,
        c.head_dim,
        c.vocab_size,
        types.join("+")
    )
}

/// One measured device and model: the winner, and every candidate's decode time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TuneEntry {
    /// What it applies to.
    pub key: TuneKey,
    /// The fastest choice.
    pub tuning: Tuning,
    /// Each decode candidate and its median time per decode step.
    pub measured: Vec<Timed>,
    /// Each prefill candidate and its median time per prompt token.
    #[serde(default)]
    pub prefill: Vec<Timed>,
    /// Context depth the decode steps were timed at.
    pub depth: usize,
    /// Prompt tokens the prefill candidates were timed on.
    #[serde(default)]
    pub prompt: usize,
    /// Ember version that measured it.
    pub version: String,
}

/// A candidate's measured time.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Timed {
    /// The kernel choice.
    pub kernels: Tuning,
    /// Median milliseconds per token (per decode step, or per prompt token).
    pub ms_per_token: f64,
}

/// The tuning cache: a JSON file of [`TuneEntry`]s, one per key.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TuneCache {
    /// The entries, newest last.
    pub entries: Vec<TuneEntry>,
}

impl TuneCache {
    /// Where the cache lives: `EMBER_TUNE_CACHE`, else `$XDG_CACHE_HOME/ember/tune.json`, else
    /// `~/.cache/ember/tune.json`; `None` where none of those is set.
    pub fn default_path() -> Option<PathBuf> {
        let var = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("EMBER_TUNE_CACHE")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("ember/tune.json")))
            .or_else(|| var("HOME").map(|d| d.join(".cache/ember/tune.json")))
    }

    /// Reads the cache at `path`; a missing file is an empty cache.
    pub fn load(path: &Path) -> Result<TuneCache> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Invalid(format!(
                    "tuning cache {} is not valid: {e} (delete it or run `ember tune` again)",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TuneCache::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// The entry for `key`, if measured.
    pub fn find(&self, key: &TuneKey) -> Option<&TuneEntry> {
        self.entries.iter().find(|e| &e.key == key)
    }

    /// Adds `entry`, replacing an earlier one for the same key.
    pub fn insert(&mut self, entry: TuneEntry) {
        self.entries.retain(|e| e.key != entry.key);
        self.entries.push(entry);
    }

    /// Writes the cache to `path` (through a temporary file, renamed into place, so a reader
    /// never sees half a file).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("tuning cache: {e}")))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, json).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}

impl super::GpuBackend {
    /// Applies `cache`'s entry for `model` on this adapter, if it has one, and returns it.
    pub fn apply_tune_cache(&mut self, cache: &TuneCache, model: &ModelFile) -> Option<Tuning> {
        let entry = cache.find(&TuneKey::new(self.adapter(), model))?;
        self.set_tuning(entry.tuning, true);
        Some(entry.tuning)
    }

    /// [`GpuBackend::apply_tune_cache`](super::GpuBackend::apply_tune_cache) with the cache at
    /// [`TuneCache::default_path`], if there is one. A cache that cannot be read is an error the
    /// caller may report and ignore (the defaults still work).
    pub fn apply_default_tune_cache(&mut self, model: &ModelFile) -> Result<Option<Tuning>> {
        match TuneCache::default_path() {
            Some(path) => Ok(self.apply_tune_cache(&TuneCache::load(&path)?, model)),
            None => Ok(None),
        }
    }
}
