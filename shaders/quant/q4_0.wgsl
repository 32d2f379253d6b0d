// Q4_0, 18-byte blocks of 32: d (f16), 16 bytes of nibbles; low nibbles are elements 0..16.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + c * 18u;
    let d = wf16(b);
    for (var j = 0u; j < 16u; j++) {
        let q = wbyte(b + 2u + j);
        (*dst)[j] = d * (f32(q & 15u) - 8.0);
        (*dst)[j + 16u] = d * (f32(q >> 4u) - 8.0);
    }
}
