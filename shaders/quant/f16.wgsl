// F16: chunk c of a row is elements 32c..32c+32, two bytes each.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let base = row_off + c * 64u;
    for (var i = 0u; i < 32u; i++) {
        (*dst)[i] = wf16(base + i * 2u);
    }
}
