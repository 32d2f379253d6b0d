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
fn chunk_codes(ch: Chunk, i: u32) -> vec4<f32> {
    let lo = (bytes4(wword(ch.qs + 4u * (i % 4u))) >> vec4<u32>(4u * (i / 4u))) & vec4<u32>(15u);
    let hi = (vec4<u32>(ch.qh >> (4u * i)) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u);
    return vec4<f32>(lo | (hi << vec4<u32>(4u)));
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, ch.m);
}

//!include quant/affine.wgsl
