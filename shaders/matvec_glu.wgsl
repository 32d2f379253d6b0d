// The gated MLP's first half for one token: y[n] = silu(gate_n · x) * (up_n · x), where the
// gate and up weights were uploaded together into one buffer (rows gate_row0.. and up_row0..),
// so one dispatch reads both and writes the product the down projection takes — instead of two
// mat-vecs and an elementwise kernel. Threads split each row as in matvec.wgsl; the two dot
// products of a row share the lanes' activations. With NORM = norm/rms.wgsl they take
// RMSNorm(x) * g, the MLP's norm folded in.

struct Params {
    rows: u32,
    k: u32,
    row_bytes: u32,
    gate_row0: u32,
    up_row0: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<vec4<f32>>;

//!include matvec_lanes.wgsl

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    inv: Invocation,
) {
    let scale = prepare_token(inv.lid);
    let n = lane_row(wg, groups, inv);
    let lane = lane_of(inv);
    var gs = 0.0;
    var us = 0.0;
    if (n < p.rows) {
        gs = lane_dot((p.gate_row0 + n) * p.row_bytes, p.k, lane);
        us = lane_dot((p.up_row0 + n) * p.row_bytes, p.k, lane);
    }
    let gt = lane_sum(gs, inv) * scale;
    let ut = lane_sum(us, inv) * scale;
    if (lane == 0u && n < p.rows) {
        y[n] = gt / (1.0 + exp(-gt)) * ut;
    }
}
