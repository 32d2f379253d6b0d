// Every block format in quant/ describes its weights as scale * code + offset, the scale and
// offset shared by (at least) 16 elements: `chunk_codes(ch, i)` gives the codes of elements
// 4i..4i+4 of a chunk as f32, and `chunk_affine(ch, half)` the (scale, offset) of elements
// 16 * half .. 16 * half + 16. Kernels that keep decoded weights (matmul, embed) take values from
// here; the mat-vecs' `chunk_dot` keeps the offset out of the inner loop.

fn chunk_vec4(ch: Chunk, i: u32) -> vec4<f32> {
    let a = chunk_affine(ch, i / 4u);
    return a.x * chunk_codes(ch, i) + a.y;
}
