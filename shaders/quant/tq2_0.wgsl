// TQ2_0, 66-byte blocks of 256: qs[64] (2-bit codes q, value (q - 1) * d: byte m of 32-byte half
// h holds elements 128h + 32k + m in bits 2k..2k+2), d (f16). Uploaded by pairs, qs0 qs1 d0 d1
// (132 bytes).
struct Chunk {
    qs: u32,
    shift: u32,
    d: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = row_off + (c / 16u) * 132u;
    let h = (c / 8u) % 2u;
    let sub = c % 8u;
    return Chunk(pair + 64u * h + 32u * (sub / 4u), 2u * (sub % 4u), wf16(pair + 128u + 2u * h));
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    return (wword(ch.qs + 4u * i) >> ch.shift) & 0x03030303u;
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, -ch.d);
}

//!include quant/packed.wgsl
