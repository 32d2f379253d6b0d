// The lanes of a one-token mat-vec row inside one subgroup: LANES consecutive invocations of a
// subgroup (LANES divides the subgroup size, which divides 64), their partial sums combined by a
// butterfly of subgroup shuffles: no workgroup memory, no barriers. Needs the subgroups feature.

struct Invocation {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) sid: u32,
    @builtin(subgroup_size) size: u32,
}

// Which of the workgroup's ROWS rows this invocation works on.
fn row_slot(inv: Invocation) -> u32 {
    return inv.sg * (inv.size / LANES) + inv.sid / LANES;
}

// This invocation's lane within its row.
fn lane_of(inv: Invocation) -> u32 {
    return inv.sid % LANES;
}

// Sum of `v` over the lanes of this invocation's row, on every lane. Call from uniform control
// flow.
fn lane_sum(v: f32, inv: Invocation) -> f32 {
    var s = v;
    for (var off = LANES / 2u; off > 0u; off /= 2u) {
        s += subgroupShuffleXor(s, off);
    }
    return s;
}
