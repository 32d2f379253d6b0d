// Prefill matrix product in tiles: y[t, out_off + n] = sum_k x[t, k] * W[n, k] (+ bias) for one
// weight part, a 64-thread workgroup computing 32 weight rows x 32 tokens and each thread a
// 4 x 4 block of those outputs in registers. For each 32-element chunk of k the workgroup decodes
// its rows' chunk once into workgroup memory and loads its tokens' activations beside it, so a
// decoded weight serves 32 tokens (matmul.wgsl: 8) and an activation load 32 rows; the inner
// loop does 16 four-wide dot products per 8 workgroup-memory reads. 8 KiB of workgroup memory.
// The block format's `chunk_at` and `chunk_vec4` are spliced in below.

//!include matmul_io.wgsl

//!include quant/bytes.wgsl
//!include QUANT

// Rows and tokens per tile; each thread computes 4 x 4 outputs.
const TR: u32 = 32u;
const TT: u32 = 32u;

// One chunk (8 vec4s) of each of the tile's rows, and of each of its tokens.
var<workgroup> ws: array<vec4<f32>, 256>;
var<workgroup> xs: array<vec4<f32>, 256>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = wg.x * TR;
    let t0 = wg.y * TT;
    // The outputs this thread computes: rows r0..r0+4 and tokens j0..j0+4 of the tile.
    let r0 = (lid / 8u) * 4u;
    let j0 = (lid % 8u) * 4u;
    // What this thread loads: half a chunk (4 vec4s) of tile row / token `lr`.
    let lr = lid / 2u;
    let lh = (lid % 2u) * 4u;
    var acc: array<vec4<f32>, 4>;
    let chunks = p.k / 32u;
    for (var c = 0u; c < chunks; c++) {
        let n = n0 + lr;
        if (n < p.rows) {
            let ch = chunk_at((p.w_row0 + n) * p.row_bytes, c);
            for (var i = 0u; i < 4u; i++) {
                ws[lr * 8u + lh + i] = chunk_vec4(ch, lh + i);
            }
        } else {
            for (var i = 0u; i < 4u; i++) {
                ws[lr * 8u + lh + i] = vec4<f32>(0.0);
            }
        }
        let t = t0 + lr;
        let xb = (t * p.k + c * 32u) / 4u + lh;
        for (var i = 0u; i < 4u; i++) {
            var v = vec4<f32>(0.0);
            if (t < p.tokens) {
                v = x[xb + i];
            }
            xs[lr * 8u + lh + i] = v;
        }
        workgroupBarrier();
        for (var i = 0u; i < 8u; i++) {
            let x0 = xs[(j0 + 0u) * 8u + i];
            let x1 = xs[(j0 + 1u) * 8u + i];
            let x2 = xs[(j0 + 2u) * 8u + i];
            let x3 = xs[(j0 + 3u) * 8u + i];
            for (var r = 0u; r < 4u; r++) {
                let wv = ws[(r0 + r) * 8u + i];
                acc[r] += vec4<f32>(dot(wv, x0), dot(wv, x1), dot(wv, x2), dot(wv, x3));
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let n = n0 + r0 + r;
        if (n >= p.rows) {
            break;
        }
        var b = 0.0;
        if (p.has_bias != 0u) {
            b = bias[p.out_off + n];
        }
        for (var j = 0u; j < 4u; j++) {
            let t = t0 + j0 + j;
            if (t < p.tokens) {
                let at = t * p.out_stride + p.out_off + n;
                var v = acc[r][j] + b;
                if (p.accumulate != 0u) {
                    v += y[at];
                }
                y[at] = v;
            }
        }
    }
}
