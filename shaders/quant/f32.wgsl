// F32: chunk c of a row is elements 32c..32c+32, four bytes each.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let base = row_off + c * 128u;
    for (var i = 0u; i < 32u; i++) {
        (*dst)[i] = bitcast<f32>(wu32(base + i * 4u));
    }
}
