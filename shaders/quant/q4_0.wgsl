// Q4_0, 18-byte blocks of 32: d (f16), 16 bytes of nibbles; low nibbles are elements 0..16.
struct Chunk {
    qs: u32,
    d: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + c * 18u;
    return Chunk(b + 2u, wf16(b));
}

// Elements 4i..4i+4: low nibbles of bytes 4i.. for i < 4, high nibbles of bytes 4(i - 4).. after.
fn chunk_vec4(ch: Chunk, i: u32) -> vec4<f32> {
    let q = (bytes4(wword(ch.qs + 4u * (i % 4u))) >> vec4<u32>(4u * (i / 4u))) & vec4<u32>(15u);
    return ch.d * (vec4<f32>(q) - 8.0);
}
