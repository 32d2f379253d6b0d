// Causal attention for a prompt's rows, tiled over the queries: a 64-thread workgroup takes 64
// consecutive query rows of one head, one thread per row with its query and running output in
// registers. The keys and values are walked in blocks of KB positions that the workgroup loads
// into workgroup memory together, so each block is read from memory once per 64 rows instead of
// once per row (attention.wgsl), and every thread then reads the same block entry at the same
// time (a broadcast). Each thread keeps an online softmax; positions after its own (and before
// its sliding window) are masked.
// The cache holds {{KV}} values; arithmetic is f32. 8 KiB of workgroup memory.

//!include attention_io.wgsl

const QT: u32 = 64u;
// Positions per block: 8, or 4 for wide heads (the same workgroup memory).
const KB: u32 = 256u / MAX_D4;

var<workgroup> ks: array<vec4<f32>, 256>; // KB * MAX_D4
var<workgroup> vs: array<vec4<f32>, 256>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.y;
    let r = wid.x * QT + lid;
    let live = r < p.rows;
    let pos = p.pos0 + min(r, p.rows - 1u);
    let last = p.pos0 + min(wid.x * QT + QT, p.rows) - 1u;
    let d4 = p.head_dim / 4u;
    let kvo = (h / (p.heads / p.kv_heads)) * d4;
    let stride = p.kv_dim / 4u;
    let qb = (min(r, p.rows - 1u) * p.heads + h) * d4;

    var qv: array<vec4<f32>, MAX_D4>;
    var acc: array<vec4<f32>, MAX_D4>;
    for (var d = 0u; d < d4; d++) {
        qv[d] = q[qb + d] * p.scale;
    }
    var m = -3.0e38;
    var l = 0.0;
    // A sliding window: the tile's first row starts the earliest, each row masks before its own.
    let lo = first_position(p.pos0 + wid.x * QT);
    let own = first_position(pos);
    for (var j0 = lo / KB * KB; j0 <= last; j0 += KB) {
        // Load positions j0 .. j0 + KB of this head's keys and values.
        for (var i = lid; i < KB * d4; i += 64u) {
            let j = j0 + i / d4;
            var kv = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if (j <= last && j >= p.base) {
                kv = vec4<f32>(kc[(j - p.base) * stride + kvo + i % d4]);
                vv = vec4<f32>(vc[(j - p.base) * stride + kvo + i % d4]);
            }
            ks[(i / d4) * MAX_D4 + i % d4] = kv;
            vs[(i / d4) * MAX_D4 + i % d4] = vv;
        }
        workgroupBarrier();
        for (var t = 0u; t < KB; t++) {
            if (j0 + t <= pos && j0 + t >= own) {
                var s = 0.0;
                for (var d = 0u; d < d4; d++) {
                    s += dot(qv[d], ks[t * MAX_D4 + d]);
                }
                s = soft_cap(s, p.softcap);
                let m_new = max(m, s);
                let corr = exp(m - m_new);
                let pj = exp(s - m_new);
                l = l * corr + pj;
                for (var d = 0u; d < d4; d++) {
                    acc[d] = acc[d] * corr + pj * vs[t * MAX_D4 + d];
                }
                m = m_new;
            }
        }
        workgroupBarrier();
    }
    if (live) {
        let ob = (r * p.heads + h) * d4;
        for (var d = 0u; d < d4; d++) {
            out[ob + d] = acc[d] / l;
        }
    }
}
