// IQ2_S, 82-byte blocks of 256: d (f16), qs[32] (low 8 bits of each 8 values' index into the
// 1024-entry grid), signs[32] (one byte per 8 values), qh[8] (2 high index bits per 8 values),
// scales[8] (a 4-bit s per 16 values, scale d * (0.5 + s) / 4). Uploaded by pairs, d0 d1
// qs+signs0 qs+signs1 qh0 qh1 scales0 scales1 (164 bytes), after the grid (quant/lattice.wgsl).
const GRID_BYTES: u32 = 8192u;

struct Chunk {
    qs: u32,
    qh: u32,
    scale: vec2<f32>,
}

//!include quant/lattice.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = GRID_BYTES + row_off + (c / 16u) * 164u;
    let h = (c / 8u) % 2u;
    let g = c % 8u;
    let s = wbyte(pair + 148u + 8u * h + g);
    let d = wf16(pair + 2u * h);
    return Chunk(
        pair + 4u + 64u * h + 4u * g,
        wbyte(pair + 132u + 8u * h + g),
        d * (vec2<f32>(0.5) + vec2<f32>(vec2<u32>(s & 15u, s >> 4u))) * 0.25,
    );
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let run = i / 2u;
    let index = wbyte(ch.qs + run) | (((ch.qh >> (2u * run)) & 3u) << 8u);
    let signs = wbyte(ch.qs + 32u + run) >> (4u * (i % 2u));
    return signed_grid(8u * index + 4u * (i % 2u), signs);
}

fn chunk_affine(ch: Chunk, half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale[half], 0.0);
}

//!include quant/packed.wgsl
