// RMSNorm: out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w. One 64-thread workgroup per
// row; the reduction is spliced in (workgroup memory, or subgroup operations where available).
// A "row" may be one head of a token (Qwen3's q/k norms): `rows` x `cols` is then tokens x heads
// by head size; workgroups fold into two dimensions past 65535 rows.

struct Params {
    cols: u32,
    eps: f32,
    rows: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

//!include REDUCE

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var i = lid.x; i < p.cols; i += 64u) {
        let v = x[base + i];
        s += v * v;
    }
    let scale = 1.0 / sqrt(workgroup_sum(s, lid.x) / f32(p.cols) + p.eps);
    for (var i = lid.x; i < p.cols; i += 64u) {
        out[base + i] = x[base + i] * scale * w[i];
    }
}
