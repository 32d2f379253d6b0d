// Q8_0, 34-byte blocks of 32: d (f16), 32 signed bytes; value d * q.
struct Chunk {
    qs: u32,
    d: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let b = row_off + c * 34u;
    return Chunk(b + 2u, wf16(b));
}

fn chunk_vec4(ch: Chunk, i: u32) -> vec4<f32> {
    return ch.d * sbytes4(wword(ch.qs + 4u * i));
}
