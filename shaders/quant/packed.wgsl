// The integer block formats give their codes four to a word, one signed byte each
// (`chunk_packed(ch, i)`: elements 4i..4i+4 of a chunk), which the int8 mat-vec
// (quant/chunk_dot_i8.wgsl) multiplies as they are; the other kernels take them as f32 here.

fn chunk_codes(ch: Chunk, i: u32) -> vec4<f32> {
    return sbytes4(chunk_packed(ch, i));
}

// Bits 0..4 of `t` moved to bit 4 of bytes 0..4 (Q5_0 and Q5_1's fifth bits).
fn fifth_bits(t: u32) -> u32 {
    return ((t & 1u) << 4u) | ((t & 2u) << 11u) | ((t & 4u) << 18u) | ((t & 8u) << 25u);
}

//!include quant/affine.wgsl
