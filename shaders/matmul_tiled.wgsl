// Prefill matrix product in tiles: y[t, out_off + n] = sum_k x[t, k] * W[n, k] (+ bias) for one
// weight part, a workgroup computing TR weight rows x TT tokens and each of its TR * TT / 16
// threads a 4 x 4 block of those outputs in registers. For each 32-element chunk of k the
// workgroup decodes its rows' chunk once into workgroup memory and loads its tokens'
// activations beside it, so a decoded weight serves TT tokens (matmul.wgsl: 8) and an
// activation load TR rows; the inner loop does 16 four-wide dot products per 8
// workgroup-memory reads. The tile shape (32 or 64 each way: 8 to 16 KiB of workgroup memory
// in f32, half in f16) is `ember tune`'s to choose. With TILE_TYPE f16 the tiles hold f16 and
// each four-wide dot product is f16 arithmetic (twice the rate on many mobile GPUs), summed in
// f32. The block format's `chunk_at` and `chunk_vec4` are spliced in below.

//!include matmul_io.wgsl

//!include quant/bytes.wgsl
//!include QUANT

const TR: u32 = {{TILE_ROWS}}u;
const TT: u32 = {{TILE_TOKENS}}u;
// TR * TT / 16: one 4 x 4 block each.
const THREADS: u32 = {{TILE_THREADS}}u;
// The vec4s of a chunk each thread loads: of one tile row, and of one token.
const WL: u32 = TR * 8u / THREADS;
const XL: u32 = TT * 8u / THREADS;

alias tile4 = vec4<{{TILE_TYPE}}>;

// One chunk (8 vec4s) of each of the tile's rows, and of each of its tokens.
var<workgroup> ws: array<tile4, TR * 8u>;
var<workgroup> xs: array<tile4, TT * 8u>;

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n0 = wg.x * TR;
    let t0 = wg.y * TT;
    // The outputs this thread computes: rows r0..r0+4 and tokens j0..j0+4 of the tile.
    let r0 = (lid / (TT / 4u)) * 4u;
    let j0 = (lid % (TT / 4u)) * 4u;
    // What this thread loads: vec4s wh..wh+WL of tile row `wr`, xh..xh+XL of token `xr`.
    let wr = lid / (8u / WL);
    let wh = (lid % (8u / WL)) * WL;
    let xr = lid / (8u / XL);
    let xh = (lid % (8u / XL)) * XL;
    var acc: array<vec4<f32>, 4>;
    let chunks = p.k / 32u;
    for (var c = 0u; c < chunks; c++) {
        let n = n0 + wr;
        if (n < p.rows) {
            let ch = chunk_at((p.w_row0 + n) * p.row_bytes, c);
            for (var i = 0u; i < WL; i++) {
                ws[wr * 8u + wh + i] = tile4(chunk_vec4(ch, wh + i));
            }
        } else {
            for (var i = 0u; i < WL; i++) {
                ws[wr * 8u + wh + i] = tile4(0.0);
            }
        }
        let t = t0 + xr;
        let xb = (t * p.k + c * 32u) / 4u + xh;
        for (var i = 0u; i < XL; i++) {
            var v = vec4<f32>(0.0);
            if (t < p.tokens) {
                v = x[xb + i];
            }
            xs[xr * 8u + xh + i] = tile4(v);
        }
        workgroupBarrier();
        for (var i = 0u; i < 8u; i++) {
            let x0 = xs[(j0 + 0u) * 8u + i];
            let x1 = xs[(j0 + 1u) * 8u + i];
            let x2 = xs[(j0 + 2u) * 8u + i];
            let x3 = xs[(j0 + 3u) * 8u + i];
            for (var r = 0u; r < 4u; r++) {
                let wv = ws[(r0 + r) * 8u + i];
                acc[r] += vec4<f32>(tile4(dot(wv, x0), dot(wv, x1), dot(wv, x2), dot(wv, x3)));
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
