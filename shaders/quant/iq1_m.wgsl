// IQ1_M, 56-byte blocks of 256 (word-aligned, uploaded as they are, after the grid of
// quant/lattice.wgsl): qs[32] (low 8 bits of each 8 values' grid index), qh[16] (a nibble per 8
// values: 3 high index bits, the sign of the ±1/8 shift on top), scales (4 u16: a 3-bit s per
// 16 values, the f16 super-scale d in their top nibbles). Value d * (2s + 1) * (v ± 1/8), as
// codes 8v ± 1 with the scale over 8.
const GRID_BYTES: u32 = 16384u;

struct Chunk {
    b: u32,
    g: u32,
    scale: vec2<f32>,
}

//!include quant/lattice.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = GRID_BYTES + row_off + (c / 8u) * 56u;
    let g = c % 8u;
    let sc = vec4<u32>(wu16(b + 48u), wu16(b + 50u), wu16(b + 52u), wu16(b + 54u));
    let top = (sc >> vec4<u32>(12u)) << vec4<u32>(0u, 4u, 8u, 12u);
    let d = unpack2x16float(top.x | top.y | top.z | top.w).x;
    let s = (vec2<u32>(sc[g / 2u]) >> vec2<u32>(6u * (g % 2u), 6u * (g % 2u) + 3u)) & vec2<u32>(7u);
    return Chunk(b, g, d * vec2<f32>(2u * s + 1u) * 0.125);
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let run = i / 2u;
    let nibble = (wbyte(ch.b + 32u + 2u * ch.g + run / 2u) >> (4u * (run % 2u))) & 15u;
    let index = wbyte(ch.b + 4u * ch.g + run) | ((nibble & 7u) << 8u);
    return iq1_grid(8u * index + 4u * (i % 2u), select(1, -1, (nibble & 8u) != 0u));
}

fn chunk_affine(ch: Chunk, half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale[half], 0.0);
}

//!include quant/packed.wgsl
