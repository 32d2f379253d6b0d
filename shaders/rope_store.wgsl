// The step's new queries and keys rotated (RoPE) and its keys and values written into the KV
// cache, in one dispatch instead of four (rope q, rope k, store k, store v). Row r is at
// position pos0 + r. Invocation idx does one of: a pair of q, rotated in place (the first
// rows * heads * half); a pair of k, rotated and written to the cache (the next
// rows * kv_heads * head_dim / 2); two values of v copied to the cache (the rest). The first
// `pairs` pairs of a head rotate (partial rotary: fewer than head_dim / 2; the others of k are
// copied as they are): (2i, 2i+1) with pair_layout 0, (i, i + pairs) with 1. The cache holds
// {{KV}} values.

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    pos0: u32,
    pair_layout: u32,
    rows: u32,
    pairs: u32,
    // The first position the cache holds (position j is at row j - base).
    base: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> inv_freq: array<f32>;
@group(0) @binding(5) var<storage, read_write> kc: array<{{KV}}>;
@group(0) @binding(6) var<storage, read_write> vc: array<{{KV}}>;

// Element offsets (within a row of `heads` heads) of pair `i` of head `head`: a rotated pair
// for i < pairs, past them the remaining dimensions two by two.
fn pair_at(head: u32, i: u32) -> vec2<u32> {
    let base = head * p.head_dim;
    if (i >= p.pairs) {
        return vec2<u32>(base + 2u * i, base + 2u * i + 1u);
    }
    if (p.pair_layout == 1u) {
        return vec2<u32>(base + i, base + i + p.pairs);
    }
    return vec2<u32>(base + 2u * i, base + 2u * i + 1u);
}

// (x0, x1) rotated by the angle of frequency `i` at position `pos`.
fn rotate(x0: f32, x1: f32, pos: u32, i: u32) -> vec2<f32> {
    let angle = f32(pos) * inv_freq[i];
    let c = cos(angle);
    let s = sin(angle);
    return vec2<f32>(x0 * c - x1 * s, x0 * s + x1 * c);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 64u;
    let half = p.head_dim / 2u;
    let kv_dim = p.kv_heads * p.head_dim;
    let nq = p.rows * p.heads * p.pairs;
    let nk = p.rows * p.kv_heads * half;
    let nv = p.rows * kv_dim / 2u;
    if (idx < nq) {
        let i = idx % p.pairs;
        let head = (idx / p.pairs) % p.heads;
        let r = idx / (p.pairs * p.heads);
        let at = pair_at(head, i) + vec2<u32>(r * p.heads * p.head_dim);
        let y = rotate(q[at.x], q[at.y], p.pos0 + r, i);
        q[at.x] = y.x;
        q[at.y] = y.y;
    } else if (idx < nq + nk) {
        let j = idx - nq;
        let i = j % half;
        let head = (j / half) % p.kv_heads;
        let r = j / (half * p.kv_heads);
        let at = pair_at(head, i);
        let src = at + vec2<u32>(r * kv_dim);
        let dst = at + vec2<u32>((p.pos0 + r - p.base) * kv_dim);
        var y = vec2<f32>(k[src.x], k[src.y]);
        if (i < p.pairs) {
            y = rotate(y.x, y.y, p.pos0 + r, i);
        }
        kc[dst.x] = {{KV}}(y.x);
        kc[dst.y] = {{KV}}(y.y);
    } else if (idx < nq + nk + nv) {
        // v is rows x kv_dim and the cache position-major: one contiguous copy from pos0 on.
        let e = 2u * (idx - nq - nk);
        let dst = (p.pos0 - p.base) * kv_dim + e;
        vc[dst] = {{KV}}(v[e]);
        vc[dst + 1u] = {{KV}}(v[e + 1u]);
    }
}
