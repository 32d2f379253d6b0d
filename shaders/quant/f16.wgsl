// F16: chunk c of a row is elements 32c..32c+32, two bytes each (rows are word-aligned).
struct Chunk {
    word: u32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    return Chunk((row_off + c * 64u) / 4u);
}

fn chunk_vec4(ch: Chunk, i: u32) -> vec4<f32> {
    let j = ch.word + 2u * i;
    return vec4<f32>(unpack2x16float(w[j]), unpack2x16float(w[j + 1u]));
}
