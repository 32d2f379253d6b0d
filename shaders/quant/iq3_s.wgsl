// IQ3_S, 110-byte blocks of 256: d (f16), qs[64] (low 8 bits of each 4 values' index into the
// 512-entry grid of 4 values), qh[8] (the 9th bits), signs[32] (one bit per value), scales[4]
// (a 4-bit s per 32 values, scale d * (1 + 2s)). Uploaded by pairs, d0 d1 qs0 qs1 qh0 qh1
// signs0 signs1 scales0 scales1 (220 bytes), after the grid (quant/lattice.wgsl).
const GRID_BYTES: u32 = 2048u;

struct Chunk {
    qs: u32,
    qh: u32,
    signs: u32,
    scale: f32,
}

//!include quant/lattice.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = GRID_BYTES + row_off + (c / 16u) * 220u;
    let h = (c / 8u) % 2u;
    let g = c % 8u;
    let s = (wbyte(pair + 212u + 4u * h + g / 2u) >> (4u * (g % 2u))) & 15u;
    return Chunk(
        pair + 4u + 64u * h + 8u * g,
        wbyte(pair + 132u + 8u * h + g),
        pair + 148u + 32u * h + 4u * g,
        wf16(pair + 2u * h) * f32(1u + 2u * s),
    );
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let index = wbyte(ch.qs + i) | (((ch.qh >> i) & 1u) << 8u);
    let signs = wbyte(ch.signs + i / 2u) >> (4u * (i % 2u));
    return signed_grid(4u * index, signs);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale, 0.0);
}

//!include quant/packed.wgsl
