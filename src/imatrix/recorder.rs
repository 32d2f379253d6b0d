//! A backend that records what each weight matrix multiplies: it wraps another backend, runs
//! every op there, and before each product of a watched weight reads the activations back and
//! adds their squares to the importance matrix. The forward pass does not know it is watched.

use crate::backend::{AttentionShape, Backend, CacheLayer, Norm, OpTimes, Rope, SeqRows, Unary};
use crate::error::Result;
use crate::format::{Activation, TensorView};

use super::ImportanceMatrix;

/// Products of fewer rows than this are not counted (llama.cpp's rule: single-token steps are
/// not the calibration text's statistics).
const MIN_ROWS: usize = 16;

/// A weight and, for a watched matrix, its name and row length.
pub struct Named<W> {
    name: Option<(String, usize)>,
    inner: W,
}

/// The recording backend around `B`.
pub(crate) struct Recorder<B> {
    inner: B,
    watch: Box<dyn Fn(&str) -> bool>,
    /// What has been recorded so far.
    pub stats: ImportanceMatrix,
}

impl<B: Backend> Recorder<B> {
    /// Records the inputs of the weights `watch` accepts (by tensor name).
    pub fn new(inner: B, watch: impl Fn(&str) -> bool + 'static) -> Recorder<B> {
        Recorder {
            inner,
            watch: Box::new(watch),
            stats: ImportanceMatrix::default(),
        }
    }

    fn wrap(&self, t: &TensorView, inner: B::Weight) -> Named<B::Weight> {
        let watched = t.rows() > 1 && (self.watch)(&t.name);
        Named {
            name: watched.then(|| (t.name.clone(), t.cols())),
            inner,
        }
    }

    /// Adds `x` to the statistics of each watched weight of `ws`.
    fn record<'a>(&mut self, x: &B::Act, ws: impl IntoIterator<Item = &'a Named<B::Weight>>)
    where
        B::Weight: 'a,
    {
        let watched: Vec<&(String, usize)> =
            ws.into_iter().filter_map(|w| w.name.as_ref()).collect();
        let Some(&&(_, cols)) = watched.first() else {
            return;
        };
        // A failed read is the backend's to report: the product that follows fails the same way.
        let Ok(values) = self.inner.read(x) else {
            return;
        };
        if values.len() / cols < MIN_ROWS {
            return;
        }
        for (name, _) in watched {
            self.stats.accumulate(name, &values, cols);
        }
    }
}

fn inner<'a, W>(ws: &[(&'a Named<W>, Option<&'a Named<W>>)]) -> Vec<(&'a W, Option<&'a W>)> {
    ws.iter()
        .map(|&(w, b)| (&w.inner, b.map(|b| &b.inner)))
        .collect()
}

fn rope<'a, W>(r: Rope<'a, Named<W>>) -> Rope<'a, W> {
    Rope {
        inv_freq: &r.inv_freq.inner,
        layout: r.layout,
        pairs: r.pairs,
    }
}

impl<B: Backend> Backend for Recorder<B> {
    type Weight = Named<B::Weight>;
    type Act = B::Act;
    type Cache = B::Cache;

    fn name(&self) -> String {
        self.inner.name()
    }

    fn upload(&mut self, t: &TensorView) -> Result<Self::Weight> {
        let w = self.inner.upload(t)?;
        Ok(self.wrap(t, w))
    }

    fn upload_group(&mut self, ts: &[&TensorView]) -> Result<Vec<Self::Weight>> {
        let ws = self.inner.upload_group(ts)?;
        Ok(ts.iter().zip(ws).map(|(t, w)| self.wrap(t, w)).collect())
    }

    fn new_cache(&mut self, kv_dim: usize, layers: &[CacheLayer]) -> Result<Self::Cache> {
        self.inner.new_cache(kv_dim, layers)
    }

    fn cache_start(&self, cache: &Self::Cache, layer: usize) -> usize {
        self.inner.cache_start(cache, layer)
    }

    fn load_act(&mut self, data: &[f32], rows: usize, cols: usize) -> Self::Act {
        self.inner.load_act(data, rows, cols)
    }

    fn embed(&mut self, table: &Self::Weight, ids: &[u32]) -> Self::Act {
        self.inner.embed(&table.inner, ids)
    }

    fn rms_norm(&mut self, x: &Self::Act, w: &Self::Weight, eps: f32) -> Self::Act {
        self.inner.rms_norm(x, &w.inner, eps)
    }

    fn rms_norm_heads(
        &mut self,
        x: &Self::Act,
        heads: usize,
        w: &Self::Weight,
        eps: f32,
    ) -> Self::Act {
        self.inner.rms_norm_heads(x, heads, &w.inner, eps)
    }

    fn matmul(
        &mut self,
        x: &Self::Act,
        w: &Self::Weight,
        bias: Option<&Self::Weight>,
    ) -> Self::Act {
        self.record(x, [w]);
        self.inner.matmul(x, &w.inner, bias.map(|b| &b.inner))
    }

    fn matmul_add(&mut self, x: &Self::Act, w: &Self::Weight, residual: &mut Self::Act) {
        self.record(x, [w]);
        self.inner.matmul_add(x, &w.inner, residual)
    }

    fn matmuls(
        &mut self,
        x: &Self::Act,
        ws: &[(&Self::Weight, Option<&Self::Weight>)],
    ) -> Vec<Self::Act> {
        self.record(x, ws.iter().map(|&(w, _)| w));
        self.inner.matmuls(x, &inner(ws))
    }

    fn norm_matmuls(
        &mut self,
        x: &Self::Act,
        norm: Norm<'_, Self::Weight>,
        ws: &[(&Self::Weight, Option<&Self::Weight>)],
    ) -> Vec<Self::Act> {
        let h = self.inner.rms_norm(x, &norm.weight.inner, norm.eps);
        self.matmuls(&h, ws)
    }

    fn rope(&mut self, x: &mut Self::Act, heads: usize, pos0: usize, r: Rope<'_, Self::Weight>) {
        self.inner.rope(x, heads, pos0, rope(r))
    }

    fn attention(
        &mut self,
        q: &Self::Act,
        k: &Self::Act,
        v: &Self::Act,
        cache: &mut Self::Cache,
        layer: usize,
        pos0: usize,
        shape: AttentionShape,
    ) -> Self::Act {
        self.inner.attention(q, k, v, cache, layer, pos0, shape)
    }

    fn rope_attention(
        &mut self,
        q: &mut Self::Act,
        k: &mut Self::Act,
        v: &Self::Act,
        r: Rope<'_, Self::Weight>,
        cache: &mut Self::Cache,
        layer: usize,
        pos0: usize,
        shape: AttentionShape,
    ) -> Self::Act {
        self.inner
            .rope_attention(q, k, v, rope(r), cache, layer, pos0, shape)
    }

    fn rope_attention_seqs(
        &mut self,
        q: &Self::Act,
        k: &Self::Act,
        v: &Self::Act,
        r: Rope<'_, Self::Weight>,
        caches: &mut [&mut Self::Cache],
        seqs: &[SeqRows],
        layer: usize,
        shape: AttentionShape,
    ) -> Self::Act {
        self.inner
            .rope_attention_seqs(q, k, v, rope(r), caches, seqs, layer, shape)
    }

    fn act_mul(&mut self, gate: &Self::Act, up: &Self::Act, act: Activation) -> Self::Act {
        self.inner.act_mul(gate, up, act)
    }

    fn unary(&mut self, x: &mut Self::Act, op: Unary) {
        self.inner.unary(x, op)
    }

    fn add(&mut self, x: &mut Self::Act, y: &Self::Act) {
        self.inner.add(x, y)
    }

    fn rows(&mut self, x: &Self::Act, start: usize, count: usize) -> Self::Act {
        self.inner.rows(x, start, count)
    }

    fn concat_rows(&mut self, parts: &[&Self::Act]) -> Self::Act {
        self.inner.concat_rows(parts)
    }

    fn device_bytes(&self) -> u64 {
        self.inner.device_bytes()
    }

    fn set_profiling(&mut self, on: bool) {
        self.inner.set_profiling(on)
    }

    fn take_profile(&mut self) -> OpTimes {
        self.inner.take_profile()
    }

    fn read(&mut self, x: &Self::Act) -> Result<Vec<f32>> {
        self.inner.read(x)
    }
}
