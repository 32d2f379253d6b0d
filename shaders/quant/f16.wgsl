// F16: two to a word.
//!include quant/two_byte.wgsl

fn chunk_codes(ch: Chunk, i: u32) -> vec4<f32> {
    let j = ch.word + 2u * i;
    return vec4<f32>(unpack2x16float(w[j]), unpack2x16float(w[j + 1u]));
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(1.0, 0.0);
}

//!include quant/affine.wgsl
