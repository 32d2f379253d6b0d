// Causal attention over the KV cache with grouped query heads. One invocation per (query row,
// head); an online softmax walks positions 0..=pos once, so memory does not grow with the
// context (no score matrix).

struct Params {
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    pos0: u32,
    rows: u32,
    kv_dim: u32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<f32>;
@group(0) @binding(3) var<storage, read> vc: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const MAX_HEAD_DIM: u32 = 256u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = gid.x;
    if (idx >= p.rows * p.heads) {
        return;
    }
    let r = idx / p.heads;
    let h = idx % p.heads;
    let pos = p.pos0 + r;
    let qb = idx * p.head_dim;
    let kvo = (h / (p.heads / p.kv_heads)) * p.head_dim;
    var acc: array<f32, MAX_HEAD_DIM>;
    var m = -3.0e38;
    var l = 0.0;
    for (var j = 0u; j <= pos; j++) {
        let kb = j * p.kv_dim + kvo;
        var s = 0.0;
        for (var d = 0u; d < p.head_dim; d++) {
            s += q[qb + d] * kc[kb + d];
        }
        s *= p.scale;
        let m_new = max(m, s);
        let corr = exp(m - m_new);
        let pj = exp(s - m_new);
        l = l * corr + pj;
        for (var d = 0u; d < p.head_dim; d++) {
            acc[d] = acc[d] * corr + pj * vc[kb + d];
        }
        m = m_new;
    }
    for (var d = 0u; d < p.head_dim; d++) {
        out[qb + d] = acc[d] / l;
    }
}
