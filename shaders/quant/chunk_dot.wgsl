// Dot product of chunk c of the weight row at `row_off` with the activations from vec4 `xb` on,
// four elements at a time straight from the block bytes (no decoded copy in memory). The
// activations come from `act4` (norm/none.wgsl or norm/rms.wgsl).
fn chunk_dot(row_off: u32, c: u32, xb: u32) -> f32 {
    let ch = chunk_at(row_off, c);
    var s = 0.0;
    for (var i = 0u; i < 8u; i++) {
        s += dot(chunk_vec4(ch, i), act4(xb + i));
    }
    return s;
}
