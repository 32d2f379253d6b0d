// BF16: the top half of an f32, two to a word.
//!include quant/two_byte.wgsl

fn chunk_codes(ch: Chunk, i: u32) -> vec4<f32> {
    let j = ch.word + 2u * i;
    let v = vec4<u32>(w[j], w[j], w[j + 1u], w[j + 1u]);
    return bitcast<vec4<f32>>(select(v & vec4<u32>(0xffff0000u), v << vec4<u32>(16u), vec4<bool>(true, false, true, false)));
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(1.0, 0.0);
}

//!include quant/affine.wgsl
