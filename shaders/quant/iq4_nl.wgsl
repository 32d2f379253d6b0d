// IQ4_NL, 18-byte blocks of 32: d (f16), 16 bytes of 4-bit indices into the level table
// (quant/iq4_levels.wgsl), low nibbles elements 0..16; value d * level. Uploaded by pairs of
// blocks, d0 d1 qs0 qs1 (36 bytes, word-aligned).
struct Chunk {
    qs: u32,
    d: f32,
}

//!include quant/iq4_levels.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = row_off + (c / 2u) * 36u;
    let h = c % 2u;
    return Chunk(pair + 4u + 16u * h, wf16(pair + 2u * h));
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    return iq4_packed(ch.qs, i);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, 0.0);
}

//!include quant/packed.wgsl
