// Q5_0, 22-byte blocks of 32: d (f16), qh (u32: fifth bits), 16 bytes of nibbles; value d * (q - 16).
// Uploaded by pairs of blocks, d0 d1 qh0 qh1 qs0 qs1 (44 bytes, word-aligned).
struct Chunk {
    qs: u32,
    qh: u32,
    d: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = row_off + (c / 2u) * 44u;
    let h = c % 2u;
    return Chunk(pair + 12u + 16u * h, wword(pair + 4u + 4u * h), wf16(pair + 2u * h));
}

// Elements 4i..4i+4: nibbles as in Q4_0; element e's fifth bit is bit e of qh.
fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let lo = (wword(ch.qs + 4u * (i % 4u)) >> (4u * (i / 4u))) & 0x0f0f0f0fu;
    return lo | fifth_bits((ch.qh >> (4u * i)) & 15u);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, -16.0 * ch.d);
}

//!include quant/packed.wgsl
