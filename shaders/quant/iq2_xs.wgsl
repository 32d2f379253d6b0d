// IQ2_XS, 74-byte blocks of 256: d (f16), qs (32 u16: a 9-bit index into the 512-entry grid of
// 8 values and 7 sign bits), scales (8 bytes: a 4-bit s per 16 values, scale d * (0.5 + s) / 4).
// Uploaded by pairs, d0 d1 qs0 qs1 scales0 scales1 (148 bytes), after the grid
// (quant/lattice.wgsl).
const GRID_BYTES: u32 = 4096u;

struct Chunk {
    qs: u32,
    scale: vec2<f32>,
}

//!include quant/lattice.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = GRID_BYTES + row_off + (c / 16u) * 148u;
    let h = (c / 8u) % 2u;
    let g = c % 8u;
    let s = wbyte(pair + 132u + 8u * h + g);
    let d = wf16(pair + 2u * h);
    return Chunk(
        pair + 4u + 64u * h + 8u * g,
        d * (vec2<f32>(0.5) + vec2<f32>(vec2<u32>(s & 15u, s >> 4u))) * 0.25,
    );
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let q = wu16(ch.qs + 2u * (i / 2u));
    let signs = parity_signs(q >> 9u) >> (4u * (i % 2u));
    return signed_grid(8u * (q & 511u) + 4u * (i % 2u), signs);
}

fn chunk_affine(ch: Chunk, half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale[half], 0.0);
}

//!include quant/packed.wgsl
