// BF16: the top half of an f32.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let base = row_off + c * 64u;
    for (var i = 0u; i < 32u; i++) {
        (*dst)[i] = bitcast<f32>(wu16(base + i * 2u) << 16u);
    }
}
