// F32: chunk c of a row is elements 32c..32c+32, four bytes each (rows are word-aligned).
struct Chunk {
    word: u32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    return Chunk((row_off + c * 128u) / 4u);
}

fn chunk_codes(ch: Chunk, i: u32) -> vec4<f32> {
    let j = ch.word + 4u * i;
    return bitcast<vec4<f32>>(vec4<u32>(w[j], w[j + 1u], w[j + 2u], w[j + 3u]));
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(1.0, 0.0);
}

//!include quant/affine.wgsl
