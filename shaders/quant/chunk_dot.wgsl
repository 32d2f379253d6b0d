// Dot product of chunk c of the weight row at `row_off` with the activations from vec4 `xb` on,
// straight from the block bytes (no decoded copy in memory). Per 16 elements it sums code * x
// and x, then applies the scale and offset once (quant/affine.wgsl): sum((s * q + m) * x) =
// s * sum(q * x) + m * sum(x). The activations come from `act4` (norm/none.wgsl or
// norm/rms.wgsl).
// Nothing to prepare on f32 activations (quant/chunk_dot_i8.wgsl quantizes them here).
fn prepare_acts(lid: u32) {}

fn chunk_dot(row_off: u32, c: u32, xb: u32) -> f32 {
    let ch = chunk_at(row_off, c);
    var s = 0.0;
    for (var half = 0u; half < 2u; half++) {
        var qx = 0.0;
        var sx = vec4<f32>(0.0);
        for (var j = 0u; j < 4u; j++) {
            let i = 4u * half + j;
            let x = act4(xb + i);
            qx += dot(chunk_codes(ch, i), x);
            sx += x;
        }
        let a = chunk_affine(ch, half);
        s += a.x * qx + a.y * dot(sx, vec4<f32>(1.0));
    }
    return s;
}
