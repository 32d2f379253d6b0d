// Q5_1, 24-byte blocks of 32: d, m (f16), qh (u32), 16 bytes of nibbles; value d * q + m.
struct Chunk {
    qs: u32,
    qh: u32,
    d: f32,
    m: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + c * 24u;
    return Chunk(b + 8u, wword(b + 4u), wf16(b), wf16(b + 2u));
}

// Elements 4i..4i+4: nibbles as in Q4_1; element e's fifth bit is bit e of qh.
fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let lo = (wword(ch.qs + 4u * (i % 4u)) >> (4u * (i / 4u))) & 0x0f0f0f0fu;
    return lo | fifth_bits((ch.qh >> (4u * i)) & 15u);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, ch.m);
}

//!include quant/packed.wgsl
