// Q4_0, 18-byte blocks of 32: d (f16), 16 bytes of nibbles; low nibbles are elements 0..16.
// Uploaded by pairs of blocks, d0 d1 qs0 qs1 (36 bytes, word-aligned).
struct Chunk {
    qs: u32,
    d: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = row_off + (c / 2u) * 36u;
    let h = c % 2u;
    return Chunk(pair + 4u + 16u * h, wf16(pair + 2u * h));
}

// Elements 4i..4i+4: low nibbles of bytes 4i.. for i < 4, high nibbles of bytes 4(i - 4).. after.
fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    return (wword(ch.qs + 4u * (i % 4u)) >> (4u * (i / 4u))) & 0x0f0f0f0fu;
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, -8.0 * ch.d);
}

//!include quant/packed.wgsl
