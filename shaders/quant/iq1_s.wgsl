// IQ1_S, 50-byte blocks of 256: d (f16), qs[32] (low 8 bits of each 8 values' index into the
// 2048-entry grid of -1/0/1), qh (a u16 per 32 values: 3 high index bits per 8 values, a 3-bit
// scale s, the sign of the ±1/8 shift on top). Value d * (2s + 1) * (v ± 1/8), as codes
// 8v ± 1 with the scale over 8. Uploaded by pairs, d0 d1 qs0 qs1 qh0 qh1 (100 bytes), after
// the grid (quant/lattice.wgsl).
const GRID_BYTES: u32 = 16384u;

struct Chunk {
    qs: u32,
    qh: u32,
    scale: f32,
}

//!include quant/lattice.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = GRID_BYTES + row_off + (c / 16u) * 100u;
    let h = (c / 8u) % 2u;
    let g = c % 8u;
    let qh = wu16(pair + 68u + 16u * h + 2u * g);
    return Chunk(
        pair + 4u + 32u * h + 4u * g,
        qh,
        wf16(pair + 2u * h) * f32(2u * ((qh >> 12u) & 7u) + 1u) * 0.125,
    );
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let run = i / 2u;
    let index = wbyte(ch.qs + run) | (((ch.qh >> (3u * run)) & 7u) << 8u);
    return iq1_grid(8u * index + 4u * (i % 2u), select(1, -1, (ch.qh & 0x8000u) != 0u));
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale, 0.0);
}

//!include quant/packed.wgsl
