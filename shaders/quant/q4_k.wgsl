// Q4_K, 144-byte blocks of 256 (8 chunks = 8 groups): d, dmin, scales[12], qs[128].
//!include quant/k_scale_min.wgsl
fn dequant_chunk(row_off: u32, c: u32, dst: ptr<function, array<f32, 32>>) {
    let b = row_off + (c / 8u) * 144u;
    let g = c % 8u;
    let dm = k_group(b, g);
    let dl = dm.x;
    let ml = dm.y;
    let qs = b + 16u + (g / 2u) * 32u;
    let shift = 4u * (g % 2u);
    for (var l = 0u; l < 32u; l++) {
        (*dst)[l] = dl * f32((wbyte(qs + l) >> shift) & 15u) - ml;
    }
}
