// The gated MLP's first half for one token: y[n] = act(gate_n · x) * (up_n · x), where the
// gate and up weights were uploaded together into one buffer (rows gate_row0.. and up_row0..),
// so one dispatch reads both and writes the product the down projection takes — instead of two
// mat-vecs and an elementwise kernel. Threads split each row as in matvec.wgsl; the gate and up
// products of a group's rows read the same activation chunks (the second time from cache). With NORM = norm/rms.wgsl they take
// RMSNorm(x) * g, the MLP's norm folded in.

struct Params {
    rows: u32,
    k: u32,
    row_bytes: u32,
    gate_row0: u32,
    up_row0: u32,
    eps: f32,
    // activation.wgsl's code.
    act: u32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<vec4<f32>>;

//!include matvec_lanes.wgsl
//!include activation.wgsl

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    inv: Invocation,
) {
    let scale = prepare_token(inv.lid);
    let n0 = lane_row(wg, groups, inv);
    let lane = lane_of(inv);
    var gs: array<f32, GROUP_ROWS>;
    var us: array<f32, GROUP_ROWS>;
    if (n0 < p.rows) {
        let count = p.rows - n0;
        gs = lane_dots((p.gate_row0 + n0) * p.row_bytes, p.row_bytes, count, p.k, lane);
        us = lane_dots((p.up_row0 + n0) * p.row_bytes, p.row_bytes, count, p.k, lane);
    }
    for (var r = 0u; r < GROUP_ROWS; r++) {
        let n = n0 + r;
        let gt = lane_sum(gs[r], inv) * scale;
        let ut = lane_sum(us[r], inv) * scale;
        if (lane == r % LANES && n < p.rows) {
            y[n] = activate(gt, p.act) * ut;
        }
    }
}
