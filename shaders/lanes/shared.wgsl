// The lanes of a one-token mat-vec row as consecutive invocations of the workgroup; their partial
// sums meet in workgroup memory. Works on every adapter (the other choice for `//!include LANES`
// is lanes/subgroup.wgsl).

struct Invocation {
    @builtin(local_invocation_index) lid: u32,
}

// Which of the workgroup's ROWS rows this invocation works on.
fn row_slot(inv: Invocation) -> u32 {
    return inv.lid / LANES;
}

// This invocation's lane within its row.
fn lane_of(inv: Invocation) -> u32 {
    return inv.lid % LANES;
}

var<workgroup> lane_partial: array<f32, 64>;

// Sum of `v` over the lanes of this invocation's row, on every lane. Call from uniform control
// flow (it synchronizes the workgroup).
fn lane_sum(v: f32, inv: Invocation) -> f32 {
    lane_partial[inv.lid] = v;
    workgroupBarrier();
    let first = inv.lid - inv.lid % LANES;
    var total = 0.0;
    for (var i = 0u; i < LANES; i++) {
        total += lane_partial[first + i];
    }
    workgroupBarrier();
    return total;
}
