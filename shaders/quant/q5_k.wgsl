// Q5_K, 176-byte blocks of 256 (8 chunks = 8 groups): d, dmin, scales[12], qh[32], qs[128].
//!include quant/k_scale_min.wgsl
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + (c / 8u) * 176u;
    let g = c % 8u;
    let dm = k_group(b, g);
    let dl = dm.x;
    let ml = dm.y;
    let qs = b + 48u + (g / 2u) * 32u;
    let shift = 4u * (g % 2u);
    for (var l = 0u; l < 32u; l++) {
        let q = ((wbyte(qs + l) >> shift) & 15u) | (((wbyte(b + 16u + l) >> g) & 1u) << 4u);
        (*dst)[l] = dl * f32(q) - ml;
    }
}
