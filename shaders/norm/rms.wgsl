// RMSNorm folded into a one-token mat-vec: dot(w, x / rms(x) * g) = dot(w, x * g) / rms(x), so
// the products read x * g (`act4`) and each workgroup scales its sums by 1 / rms(x), which it
// computes itself from the token's k values. That costs one extra read of x per workgroup (from
// cache) and saves a dispatch and a round trip through memory. Needs bindings `x` and `g`
// (array<vec4<f32>>) and params `k` and `eps`.

//!include REDUCE

fn act4(i: u32) -> vec4<f32> {
    return x[i] * g[i];
}

// Called by every thread of the workgroup, in uniform control flow (it synchronizes).
fn norm_scale(lid: u32) -> f32 {
    var s = 0.0;
    for (var i = lid; i < p.k / 4u; i += 64u) {
        let v = x[i];
        s += dot(v, v);
    }
    return inverseSqrt(workgroup_sum(s, lid) / f32(p.k) + p.eps);
}
