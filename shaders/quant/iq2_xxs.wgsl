// IQ2_XXS, 66-byte blocks of 256: d (f16), then per group of 32 eight bytes: four indices into
// the 256-entry grid (8 values) and a u32 of four 7-bit sign fields with the 4-bit scale s on
// top (scale d * (0.5 + s) / 4). Uploaded by pairs, d0 d1 qs0 qs1 (132 bytes), after the grid
// (quant/lattice.wgsl).
const GRID_BYTES: u32 = 2048u;

struct Chunk {
    qs: u32,
    aux: u32,
    scale: f32,
}

//!include quant/lattice.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = GRID_BYTES + row_off + (c / 16u) * 132u;
    let h = (c / 8u) % 2u;
    let qs = pair + 4u + 64u * h + 8u * (c % 8u);
    let aux = wword(qs + 4u);
    return Chunk(qs, aux, wf16(pair + 2u * h) * (0.5 + f32(aux >> 28u)) * 0.25);
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let run = i / 2u;
    let signs = parity_signs(ch.aux >> (7u * run)) >> (4u * (i % 2u));
    return signed_grid(8u * wbyte(ch.qs + run) + 4u * (i % 2u), signs);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale, 0.0);
}

//!include quant/packed.wgsl
