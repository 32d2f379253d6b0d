// Q4_1, 20-byte blocks of 32: d, m (f16), 16 bytes of nibbles; value d * q + m.
struct Chunk {
    qs: u32,
    d: f32,
    m: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + c * 20u;
    return Chunk(b + 4u, wf16(b), wf16(b + 2u));
}

// Elements 4i..4i+4: low nibbles of bytes 4i.. for i < 4, high nibbles of bytes 4(i - 4).. after.
fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    return (wword(ch.qs + 4u * (i % 4u)) >> (4u * (i / 4u))) & 0x0f0f0f0fu;
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, ch.m);
}

//!include quant/packed.wgsl
