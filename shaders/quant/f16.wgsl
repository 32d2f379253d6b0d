// F16: two to a word.
//!include quant/two_byte.wgsl

fn chunk_vec4(ch: Chunk, i: u32) -> vec4<f32> {
    let j = ch.word + 2u * i;
    return vec4<f32>(unpack2x16float(w[j]), unpack2x16float(w[j + 1u]));
}
