// y[out_off + n] = sum_k x[k] * W[n, k] (+ bias[out_off + n]) for one token: the decode mat-vec
// over one weight part, rows split over threads (matvec_lanes.wgsl, which also sums the lanes).
// The block format's `chunk_at`/`chunk_vec4` are spliced in below.

//!include matmul_io.wgsl

//!include matvec_lanes.wgsl

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    inv: Invocation,
) {
    prepare_token(inv.lid);
    let n0 = lane_row(wg, groups, inv);
    let lane = lane_of(inv);
    var s: array<f32, GROUP_ROWS>;
    if (n0 < p.rows) {
        s = lane_dots((p.w_row0 + n0) * p.row_bytes, p.row_bytes, p.rows - n0, p.k, lane);
    }
    for (var r = 0u; r < GROUP_ROWS; r++) {
        let n = n0 + r;
        var total = lane_sum(s[r], inv);
        // Each row's result is written by a different lane of the group.
        if (lane == r % LANES && n < p.rows) {
            if (p.has_bias != 0u) {
                total += bias[p.out_off + n];
            }
            if (p.accumulate != 0u) {
                total += y[p.out_off + n];
            }
            y[p.out_off + n] = total;
        }
    }
}
