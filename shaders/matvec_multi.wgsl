// The products of one token with consecutive row ranges of one weight buffer, each into an
// output of its own: q, k and v uploaded together (Backend::upload_group) in one dispatch
// instead of three. Rows w_row0 .. w_row0 + rows0 go to y0, the next rows1 to y1, the next
// rows2 to y2. Threads split each row (matvec_lanes.wgsl). With NORM = norm/rms.wgsl the products
// take RMSNorm(x) * g, the attention norm folded in.

struct Params {
    rows0: u32,
    rows1: u32,
    rows2: u32,
    k: u32,
    row_bytes: u32,
    w_row0: u32,
    eps: f32,
}

@group(0) @binding(0) var<storage, read> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y0: array<f32>;
@group(0) @binding(4) var<storage, read_write> y1: array<f32>;
@group(0) @binding(5) var<storage, read_write> y2: array<f32>;
@group(0) @binding(6) var<storage, read> g: array<vec4<f32>>;

//!include matvec_lanes.wgsl

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    inv: Invocation,
) {
    let scale = prepare_token(inv.lid);
    let n0 = lane_row(wg, groups, inv);
    let lane = lane_of(inv);
    let rows = p.rows0 + p.rows1 + p.rows2;
    var s: array<f32, GROUP_ROWS>;
    if (n0 < rows) {
        s = lane_dots((p.w_row0 + n0) * p.row_bytes, p.row_bytes, rows - n0, p.k, lane);
    }
    for (var r = 0u; r < GROUP_ROWS; r++) {
        let n = n0 + r;
        let total = lane_sum(s[r], inv) * scale;
        if (lane == r % LANES && n < rows) {
            if (n < p.rows0) {
                y0[n] = total;
            } else if (n < p.rows0 + p.rows1) {
                y1[n - p.rows0] = total;
            } else {
                y2[n - p.rows0 - p.rows1] = total;
            }
        }
    }
}
