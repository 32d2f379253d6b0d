// Q8_0, 34-byte blocks of 32: d (f16), 32 signed bytes; value d * q. Uploaded by pairs of
// blocks, d0 d1 qs0 qs1 (68 bytes, word-aligned).
struct Chunk {
    qs: u32,
    d: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = row_off + (c / 2u) * 68u;
    let h = c % 2u;
    return Chunk(pair + 4u + 32u * h, wf16(pair + 2u * h));
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    return wword(ch.qs + 4u * i);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, 0.0);
}

//!include quant/packed.wgsl
