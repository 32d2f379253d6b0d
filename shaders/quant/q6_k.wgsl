// Q6_K, 210-byte blocks of 256 (8 chunks): ql[128], qh[64], scales[16] (i8), d.
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + (c / 8u) * 210u;
    let sub = c % 8u;
    let half = sub / 4u;
    let k = sub % 4u;
    let d = wf16(b + 208u);
    let s0 = d * f32(wi8(b + 192u + sub * 2u));
    let s1 = d * f32(wi8(b + 192u + sub * 2u + 1u));
    for (var l = 0u; l < 32u; l++) {
        let low = (wbyte(b + half * 64u + l + 32u * (k % 2u)) >> (4u * (k / 2u))) & 15u;
        let high = (wbyte(b + 128u + half * 32u + l) >> (2u * k)) & 3u;
        let q = i32(low | (high << 4u)) - 32;
        (*dst)[l] = select(s1, s0, l < 16u) * f32(q);
    }
}
