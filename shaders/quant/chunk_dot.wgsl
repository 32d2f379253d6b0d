// Dot product of chunk c of the weight row at `row_off` with the activations, straight from the
// block bytes (no decoded copy in memory). Per 16 elements it sums code * x, then applies the
// scale and offset once (quant/affine.wgsl): sum((s * q + m) * x) = s * sum(q * x) + m * sum(x),
// with sum(x) computed once per chunk in `chunk_acts`, which several rows' products then share.
// The activations come from `act4` (norm/none.wgsl or norm/rms.wgsl).
// Nothing to prepare on f32 activations (quant/chunk_dot_i8.wgsl quantizes them here).
fn prepare_acts(lid: u32) {}

// One 32-value chunk of the activations, and the sums of its two halves.
struct Acts {
    v: array<vec4<f32>, 8>,
    sums: vec2<f32>,
}

fn chunk_acts(c: u32) -> Acts {
    var a: Acts;
    var h = array<vec4<f32>, 2>();
    for (var i = 0u; i < 8u; i++) {
        a.v[i] = act4(c * 8u + i);
        h[i / 4u] += a.v[i];
    }
    a.sums = vec2<f32>(dot(h[0], vec4<f32>(1.0)), dot(h[1], vec4<f32>(1.0)));
    return a;
}

fn chunk_dot(row_off: u32, c: u32, a: Acts) -> f32 {
    let ch = chunk_at(row_off, c);
    var s = 0.0;
    for (var half = 0u; half < 2u; half++) {
        var qx = 0.0;
        for (var j = 0u; j < 4u; j++) {
            let i = 4u * half + j;
            qx += dot(chunk_codes(ch, i), a.v[i]);
        }
        let af = chunk_affine(ch, half);
        s += af.x * qx + af.y * a.sums[half];
    }
    return s;
}
