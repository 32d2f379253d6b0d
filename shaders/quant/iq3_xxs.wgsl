// IQ3_XXS, 98-byte blocks of 256: d (f16), qs[64] (an index into the 256-entry grid of 4 values
// per 4 values), then per group of 32 a u32 of four 7-bit sign fields with the 4-bit scale s on
// top (scale d * (0.5 + s) / 2). Uploaded by pairs, d0 d1 qs0 qs1 signs0 signs1 (196 bytes),
// after the grid (quant/lattice.wgsl).
const GRID_BYTES: u32 = 1024u;

struct Chunk {
    qs: u32,
    aux: u32,
    scale: f32,
}

//!include quant/lattice.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = GRID_BYTES + row_off + (c / 16u) * 196u;
    let h = (c / 8u) % 2u;
    let g = c % 8u;
    let aux = wword(pair + 132u + 32u * h + 4u * g);
    return Chunk(
        pair + 4u + 64u * h + 8u * g,
        aux,
        wf16(pair + 2u * h) * (0.5 + f32(aux >> 28u)) * 0.5,
    );
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let signs = parity_signs(ch.aux >> (7u * (i / 2u))) >> (4u * (i % 2u));
    return signed_grid(4u * wbyte(ch.qs + i), signs);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale, 0.0);
}

//!include quant/packed.wgsl
