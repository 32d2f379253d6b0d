// Q2_K, 84-byte blocks of 256 (8 chunks): scales[16] (nibbles: scale, min), qs[64], d, dmin.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + (c / 8u) * 84u;
    let sub = c % 8u;
    let half = sub / 4u;
    let shift = 2u * (sub % 4u);
    let d = wf16(b + 80u);
    let dmin = wf16(b + 82u);
    for (var l = 0u; l < 32u; l++) {
        let q = (wbyte(b + 16u + half * 32u + l) >> shift) & 3u;
        let sc = wbyte(b + sub * 2u + l / 16u);
        (*dst)[l] = d * f32(sc & 15u) * f32(q) - dmin * f32(sc >> 4u);
    }
}
