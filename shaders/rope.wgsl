// Rotary position embedding, in place. Row r is at position pos0 + r; the first `pairs` pairs
// of every head of the row are rotated (all head_dim/2 of them, or fewer for partial rotary).
// layout 0: pairs (2i, 2i+1); layout 1: pairs (i, i + pairs).

struct Params {
    heads: u32,
    head_dim: u32,
    pos0: u32,
    pair_layout: u32,
    rows: u32,
    pairs: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> inv_freq: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    let half = p.pairs;
    if (idx >= p.rows * p.heads * half) {
        return;
    }
    let i = idx % half;
    let head = (idx / half) % p.heads;
    let r = idx / (half * p.heads);
    let angle = f32(p.pos0 + r) * inv_freq[i];
    let c = cos(angle);
    let s = sin(angle);
    let base = (r * p.heads + head) * p.head_dim;
    var a = base + 2u * i;
    var b = a + 1u;
    if (p.pair_layout == 1u) {
        a = base + i;
        b = a + half;
    }
    let x0 = x[a];
    let x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}
