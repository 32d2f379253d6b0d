// Q6_K, 210-byte blocks of 256 (8 chunks): ql[128], qh[64], scales[16] (i8), d.
// Chunk sub = 4 * half + k: low nibble k / 2 of ql[64 * half + 32 * (k % 2)..], high bit pair k
// of qh[32 * half..]; value scale * (q - 32), one scale per 16 elements. Uploaded by pairs of
// blocks, ql0 ql1 qh0 qh1 scales0 scales1 d0 d1 (420 bytes, word-aligned).
struct Chunk {
    ql: u32,
    qh: u32,
    lshift: u32,
    hshift: u32,
    scale: vec2<f32>,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = row_off + (c / 16u) * 420u;
    let h = (c / 8u) % 2u;
    let sub = c % 8u;
    let half = sub / 4u;
    let k = sub % 4u;
    let d = wf16(pair + 416u + 2u * h);
    let sc = pair + 384u + 16u * h + sub * 2u;
    return Chunk(
        pair + 128u * h + half * 64u + 32u * (k % 2u),
        pair + 256u + 64u * h + half * 32u,
        4u * (k / 2u),
        2u * k,
        d * vec2<f32>(f32(wi8(sc)), f32(wi8(sc + 1u))),
    );
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let lo = (wword(ch.ql + 4u * i) >> ch.lshift) & 0x0f0f0f0fu;
    let hi = (wword(ch.qh + 4u * i) >> ch.hshift) & 0x03030303u;
    return lo | (hi << 4u);
}

fn chunk_affine(ch: Chunk, half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale[half], -32.0 * ch.scale[half]);
}

//!include quant/packed.wgsl
