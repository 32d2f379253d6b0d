// Weight rows split over threads, for the one-token mat-vecs (matvec, matvec_glu, matvec_multi):
// a 64-thread workgroup has 64 / LANES groups of LANES threads, and each group computes
// GROUP_ROWS consecutive rows. Lane l decodes chunks l, l + LANES, ... of its rows, so
// neighbouring threads read neighbouring blocks (coalesced loads) and a short row still keeps
// many threads busy; each activation chunk a lane loads serves all GROUP_ROWS rows. LANES
// follows the adapter's subgroup size (16 at most), so a row's lanes can sum within a subgroup
// (`//!include LANES`: lanes/subgroup.wgsl, or lanes/shared.wgsl through workgroup memory).
// Needs `chunk_acts` and `chunk_dot` (quant/chunk_dot.wgsl or quant/chunk_dot_i8.wgsl),
// spliced in below with the block format and the activations' norm; the kernel declares `w`,
// `x` (and `g` for a folded norm).

//!include quant/bytes.wgsl
//!include QUANT
//!include NORM
//!include DOT

const LANES: u32 = {{LANES}}u;
const GROUP_ROWS: u32 = {{GROUP_ROWS}}u;
// Groups of lanes per workgroup.
const GROUPS: u32 = 64u / LANES;

//!include LANES

// The first of the rows this invocation's group works on; workgroups fold into two dimensions
// when a row count needs more than 65535 of them.
fn lane_row(wg: vec3<u32>, groups: vec3<u32>, inv: Invocation) -> u32 {
    return ((wg.y * groups.x + wg.x) * GROUPS + row_slot(inv)) * GROUP_ROWS;
}

// This lane's shares of the dot products with x of the GROUP_ROWS rows from byte offset
// `row_off` on, `row_bytes` apart, of which `count` (at least 1) exist: rows past the last
// repeat it, so every load stays inside the weights and the loops have fixed bounds.
fn lane_dots(row_off: u32, row_bytes: u32, count: u32, k: u32, lane: u32) -> array<f32, GROUP_ROWS> {
    var s: array<f32, GROUP_ROWS>;
    for (var c = lane; c < k / 32u; c += LANES) {
        let a = chunk_acts(c);
        for (var r = 0u; r < GROUP_ROWS; r++) {
            s[r] += chunk_dot(row_off + min(r, count - 1u) * row_bytes, c, a);
        }
    }
    return s;
}

// Readies the token for `lane_dots` (its 8-bit copy for quant/chunk_dot_i8.wgsl) and returns
// the scale of a folded norm (1 without one). Call first, from uniform control flow.
fn prepare_token(lid: u32) -> f32 {
    let scale = norm_scale(lid);
    prepare_acts(lid);
    return scale;
}
