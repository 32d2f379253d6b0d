// Q4_K, 144-byte blocks of 256 (8 chunks = 8 groups): d, dmin, scales[12], qs[128].
// Group g takes nibble g % 2 of the 32 bytes qs[32 * (g / 2)..].
//!include quant/k_scale_min.wgsl
struct Chunk {
    qs: u32,
    shift: u32,
    scale: f32,
    dmin: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + (c / 8u) * 144u;
    let g = c % 8u;
    let dm = k_group(b, g);
    return Chunk(b + 16u + (g / 2u) * 32u, 4u * (g % 2u), dm.x, dm.y);
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    return (wword(ch.qs + 4u * i) >> ch.shift) & 0x0f0f0f0fu;
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale, -ch.dmin);
}

//!include quant/packed.wgsl
