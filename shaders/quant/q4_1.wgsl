// Q4_1, 20-byte blocks of 32: d, m (f16), 16 bytes of nibbles; value d * q + m.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + c * 20u;
    let d = wf16(b);
    let m = wf16(b + 2u);
    for (var j = 0u; j < 16u; j++) {
        let q = wbyte(b + 4u + j);
        (*dst)[j] = d * f32(q & 15u) + m;
        (*dst)[j + 16u] = d * f32(q >> 4u) + m;
    }
}
