// What the causal attention kernels for several rows (attention.wgsl, attention_prefill.wgsl)
// bind: both are dispatched with the same parameters and buffers. Row r of q (heads x head_dim)
// is at position pos0 + r and attends to positions first(pos0 + r)..=pos0 + r of the layer's
// cache (kv_dim values per position from position `base` on, {{KV}} elements; `first` is 0, or
// where a sliding window of `window` positions starts); out has q's shape.

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    pos0: u32,
    rows: u32,
    kv_dim: u32,
    scale: f32,
    // Sliding window in positions (0: none).
    window: u32,
    // Soft cap of the scaled scores (0: none).
    softcap: f32,
    // The first position the cache holds (a window-sized cache drops older ones): position j is
    // at row j - base.
    base: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kc: array<vec4<{{KV}}>>;
@group(0) @binding(3) var<storage, read> vc: array<vec4<{{KV}}>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

//!include soft_cap.wgsl

// The first position a row at `pos` attends to.
fn first_position(pos: u32) -> u32 {
    return select(0u, pos + 1u - p.window, p.window != 0u && pos + 1u > p.window);
}

// Head sizes up to 128 (or 256 in the wide-head build), in vec4s.
const MAX_D4: u32 = {{MAX_D4}}u;
