// IQ4_XS, 136-byte blocks of 256: d (f16), scales_h (u16), scales_l (4 bytes), then 16 bytes of
// 4-bit level indices (quant/iq4_levels.wgsl) per group of 32. Group g's scale is d * (ls - 32),
// ls = nibble g % 2 of scales_l[g / 2] | bits 2g..2g+2 of scales_h << 4. Word-aligned as stored.
struct Chunk {
    qs: u32,
    d: f32,
}

//!include quant/iq4_levels.wgsl

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + (c / 8u) * 136u;
    let g = c % 8u;
    let low = (wbyte(b + 4u + g / 2u) >> (4u * (g % 2u))) & 15u;
    let ls = low | (((wu16(b + 2u) >> (2u * g)) & 3u) << 4u);
    return Chunk(b + 8u + 16u * g, wf16(b) * (f32(ls) - 32.0));
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    return iq4_packed(ch.qs, i);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, 0.0);
}

//!include quant/packed.wgsl
