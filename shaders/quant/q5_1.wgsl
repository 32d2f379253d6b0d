// Q5_1, 24-byte blocks of 32: d, m (f16), qh (u32), 16 bytes of nibbles; value d * q + m.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + c * 24u;
    let d = wf16(b);
    let m = wf16(b + 2u);
    let qh = wu32(b + 4u);
    for (var j = 0u; j < 16u; j++) {
        let q = wbyte(b + 8u + j);
        let lo = (q & 15u) | (((qh >> j) & 1u) << 4u);
        let hi = (q >> 4u) | (((qh >> (j + 16u)) & 1u) << 4u);
        (*dst)[j] = d * f32(lo) + m;
        (*dst)[j + 16u] = d * f32(hi) + m;
    }
}
