// Weight rows split over threads, for the one-token mat-vecs (matvec, matvec_glu, matvec_multi):
// a 64-thread workgroup computes ROWS rows with LANES threads each. Lane l decodes chunks
// l, l + LANES, ... of its row, so neighbouring threads read neighbouring blocks (coalesced
// loads) and a short row still keeps many threads busy. LANES follows the adapter's subgroup
// size (16 at most), so a row's lanes can sum within a subgroup (`//!include LANES`:
// lanes/subgroup.wgsl, or lanes/shared.wgsl through workgroup memory). Needs `chunk_dot`
// (quant/chunk_dot.wgsl or quant/chunk_dot_i8.wgsl), spliced in below with the block format and
// the activations' norm; the kernel declares `w`, `x` (and `g` for a folded norm).

//!include quant/bytes.wgsl
//!include QUANT
//!include NORM
//!include DOT

const LANES: u32 = {{LANES}}u;
const ROWS: u32 = 64u / LANES;

//!include LANES

// The row this invocation works on; workgroups fold into two dimensions when a row count needs
// more than 65535 of them.
fn lane_row(wg: vec3<u32>, groups: vec3<u32>, inv: Invocation) -> u32 {
    return (wg.y * groups.x + wg.x) * ROWS + row_slot(inv);
}

// This lane's share of the dot product of the `k`-wide row at byte offset `row_off` with x.
fn lane_dot(row_off: u32, k: u32, lane: u32) -> f32 {
    var s = 0.0;
    for (var c = lane; c < k / 32u; c += LANES) {
        s += chunk_dot(row_off, c, c * 8u);
    }
    return s;
}

// Readies the token for `lane_dot` (its 8-bit copy for quant/chunk_dot_i8.wgsl) and returns the
// scale of a folded norm (1 without one). Call first, from uniform control flow.
fn prepare_token(lid: u32) -> f32 {
    let scale = norm_scale(lid);
    prepare_acts(lid);
    return scale;
}
