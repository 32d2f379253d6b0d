// y[t, out_off + n] = sum_k x[t, k] * W[n, k] (+ bias[out_off + n]) for one weight part.
// One invocation per weight row and tile of TILE tokens: each 32-element chunk of the row is
// decoded once and used for every token of the tile. TILE = 1 is the decode mat-vec; larger
// tiles are the prefill mat-mat. The block format's `dequant_chunk` is spliced in below.
// Loop counts per invocation stay near K * TILE / 4, under llvmpipe's 65535-iteration cap for
// rows up to 32k elements.

struct Params {
    rows: u32,
    k: u32,
    tokens: u32,
    row_bytes: u32,
    out_stride: u32,
    out_off: u32,
    has_bias: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

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
    var chunk: array<f32, 32>;
    let row_off = n * p.row_bytes;
    let chunks = p.k / 32u;
    for (var c = 0u; c < chunks; c++) {
        dequant_chunk(row_off, c, &chunk);
        for (var t = 0u; t < TILE; t++) {
            let tt = t0 + t;
            if (tt < p.tokens) {
                // In vec4s: fewer loop iterations (software rasterizers cap them) and wider loads.
                let xb = (tt * p.k + c * 32u) / 4u;
                var s = 0.0;
                for (var i = 0u; i < 8u; i++) {
                    let wv = vec4<f32>(chunk[4u * i], chunk[4u * i + 1u], chunk[4u * i + 2u], chunk[4u * i + 3u]);
                    s += dot(wv, x[xb + i]);
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
            y[tt * p.out_stride + p.out_off + n] = acc[t] + b;
        }
    }
}
