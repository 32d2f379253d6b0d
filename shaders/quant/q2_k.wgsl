// Q2_K, 84-byte blocks of 256 (8 chunks): scales[16] (nibbles: scale, min), qs[64], d, dmin.
// Chunk `sub` takes bit pair sub % 4 of the 32 bytes qs[32 * (sub / 4)..]; each 16 elements
// have their own scale and min.
struct Chunk {
    qs: u32,
    shift: u32,
    scale: vec2<f32>,
    dmin: vec2<f32>,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + (c / 8u) * 84u;
    let sub = c % 8u;
    let d = wf16(b + 80u);
    let dmin = wf16(b + 82u);
    let sc = vec2<u32>(wbyte(b + sub * 2u), wbyte(b + sub * 2u + 1u));
    return Chunk(
        b + 16u + (sub / 4u) * 32u,
        2u * (sub % 4u),
        d * vec2<f32>(sc & vec2<u32>(15u)),
        dmin * vec2<f32>(sc >> vec2<u32>(4u)),
    );
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    return (wword(ch.qs + 4u * i) >> ch.shift) & 0x03030303u;
}

fn chunk_affine(ch: Chunk, half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale[half], -ch.dmin[half]);
}

//!include quant/packed.wgsl
