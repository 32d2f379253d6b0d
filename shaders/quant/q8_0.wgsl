// Q8_0, 34-byte blocks of 32: d (f16), 32 signed bytes; value d * q.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + c * 34u;
    let d = wf16(b);
    for (var i = 0u; i < 32u; i++) {
        (*dst)[i] = d * f32(wi8(b + 2u + i));
    }
}
