// Q5_K, 176-byte blocks of 256 (8 chunks = 8 groups): d, dmin, scales[12], qh[32], qs[128].
// Group g takes nibble g % 2 of the 32 bytes qs[32 * (g / 2)..] and bit g of qh as fifth bit.
//!include quant/k_scale_min.wgsl
struct Chunk {
    qs: u32,
    qh: u32,
    shift: u32,
    g: u32,
    scale: f32,
    dmin: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + (c / 8u) * 176u;
    let g = c % 8u;
    let dm = k_group(b, g);
    return Chunk(b + 48u + (g / 2u) * 32u, b + 16u, 4u * (g % 2u), g, dm.x, dm.y);
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let lo = (wword(ch.qs + 4u * i) >> ch.shift) & 0x0f0f0f0fu;
    let hi = (wword(ch.qh + 4u * i) >> ch.g) & 0x01010101u;
    return lo | (hi << 4u);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale, -ch.dmin);
}

//!include quant/packed.wgsl
