// Sum of one value per thread over a 64-thread workgroup: subgroupAdd within each subgroup (no
// barriers), then one value per subgroup through workgroup memory. Needs the subgroups feature.
var<workgroup> red: array<f32, 64>;

fn workgroup_sum(v: f32, lid: u32) -> f32 {
    let s = subgroupAdd(v);
    // The first lane of each subgroup (exclusive prefix count 0) publishes the subgroup's sum.
    let first = subgroupExclusiveAdd(1u) == 0u;
    red[lid] = select(0.0, s, first);
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < 64u; i++) {
        total += red[i];
    }
    workgroupBarrier();
    return total;
}
