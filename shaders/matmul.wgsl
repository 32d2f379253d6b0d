// y[t, out_off + n] = sum_k x[t, k] * W[n, k] (+ bias[out_off + n]) for one weight part.
// One invocation per weight row and tile of TILE tokens: each four weights of the row are
// decoded once and used for every token of the tile. Larger tiles are the prefill mat-mat;
// TILE = 1 is the decode mat-vec where whole rows per thread suit the adapter (software
// rasterizers); GPUs split rows over threads in matvec.wgsl. The block format's `chunk_at` and
// `chunk_vec4` are spliced in below.
// Loop counts per invocation stay near K * TILE / 4, under llvmpipe's 65535-iteration cap for
// rows up to 32k elements.

//!include matmul_io.wgsl

//!include quant/bytes.wgsl
//!include QUANT

const TILE: u32 = {{TILE}}u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let t0 = gid.y * TILE;
    if (n >= p.rows) {
        return;
    }
    var acc: array<f32, TILE>;
    let row_off = (p.w_row0 + n) * p.row_bytes;
    let chunks = p.k / 32u;
    for (var c = 0u; c < chunks; c++) {
        let ch = chunk_at(row_off, c);
        var wv: array<vec4<f32>, 8>;
        for (var i = 0u; i < 8u; i++) {
            wv[i] = chunk_vec4(ch, i);
        }
        for (var t = 0u; t < TILE; t++) {
            let tt = t0 + t;
            if (tt < p.tokens) {
                let xb = (tt * p.k + c * 32u) / 4u;
                var s = 0.0;
                for (var i = 0u; i < 8u; i++) {
                    s += dot(wv[i], x[xb + i]);
                }
                acc[t] += s;
            }
        }
    }
    var b = 0.0;
    if (p.has_bias != 0u) {
        b = bias[p.out_off + n];
    }
    for (var t = 0u; t < TILE; t++) {
        let tt = t0 + t;
        if (tt < p.tokens) {
            let at = tt * p.out_stride + p.out_off + n;
            var v = acc[t] + b;
            if (p.accumulate != 0u) {
                v += y[at];
            }
            y[at] = v;
        }
    }
}
