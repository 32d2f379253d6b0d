// What the matrix kernels (matmul.wgsl, matvec.wgsl) bind: both are dispatched with the same
// parameters and buffers, y[t, out_off + n] = sum_k x[t, k] * W[n, k] (+ bias[out_off + n]) for
// the weight part W (`+=` with `accumulate`).

struct Params {
    rows: u32,
    k: u32,
    tokens: u32,
    row_bytes: u32,
    out_stride: u32,
    out_off: u32,
    has_bias: u32,
    // Nonzero: add the product to what y holds (the residual add folded into the product).
    accumulate: u32,
    // Index of the part's first row in w (weights uploaded together share a buffer).
    w_row0: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
