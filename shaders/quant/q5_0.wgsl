// Q5_0, 22-byte blocks of 32: d (f16), qh (u32: fifth bits), 16 bytes of nibbles; value d * (q - 16).
struct Chunk {
    qs: u32,
    qh: u32,
    d: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + c * 22u;
    return Chunk(b + 6u, wu32(b + 2u), wf16(b));
}

// Elements 4i..4i+4: nibbles as in Q4_0; element e's fifth bit is bit e of qh.
fn chunk_vec4(ch: Chunk, i: u32) -> vec4<f32> {
    let lo = (bytes4(wword(ch.qs + 4u * (i % 4u))) >> vec4<u32>(4u * (i / 4u))) & vec4<u32>(15u);
    let hi = (vec4<u32>(ch.qh >> (4u * i)) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u);
    return ch.d * (vec4<f32>(lo | (hi << vec4<u32>(4u))) - 16.0);
}
