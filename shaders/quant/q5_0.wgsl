// Q5_0, 22-byte blocks of 32: d (f16), qh (u32: fifth bits), 16 bytes of nibbles; value d * (q - 16).
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + c * 22u;
    let d = wf16(b);
    let qh = wu32(b + 2u);
    for (var j = 0u; j < 16u; j++) {
        let q = wbyte(b + 6u + j);
        let lo = (q & 15u) | (((qh >> j) & 1u) << 4u);
        let hi = (q >> 4u) | (((qh >> (j + 16u)) & 1u) << 4u);
        (*dst)[j] = d * (f32(lo) - 16.0);
        (*dst)[j + 16u] = d * (f32(hi) - 16.0);
    }
}
