// Q3_K, 110-byte blocks of 256 (8 chunks): hmask[32], qs[64], scales[12] (16 six-bit), d.
fn q3k_scale(b: u32, j: u32) -> f32 {
    var low: u32;
    if (j < 8u) {
        low = wbyte(b + 96u + j) & 15u;
    } else {
        low = wbyte(b + 96u + j - 8u) >> 4u;
    }
    let high = (wbyte(b + 104u + j % 4u) >> (2u * (j / 4u))) & 3u;
    return f32(i32(low | (high << 4u)) - 32);
}

fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + (c / 8u) * 110u;
    let sub = c % 8u;
    let half = sub / 4u;
    let k = sub % 4u;
    let bit = 1u << (4u * half + k);
    let d = wf16(b + 108u);
    let s0 = d * q3k_scale(b, sub * 2u);
    let s1 = d * q3k_scale(b, sub * 2u + 1u);
    for (var l = 0u; l < 32u; l++) {
        var q = i32((wbyte(b + 32u + half * 32u + l) >> (2u * k)) & 3u);
        if ((wbyte(b + l) & bit) == 0u) {
            q -= 4;
        }
        let s = select(s1, s0, l < 16u);
        (*dst)[l] = s * f32(q);
    }
}
