// Byte access into a weight tensor stored as array<u32> (little-endian GGUF bytes in the GPU's
// word-aligned layout).
// WGSL has no 8- or 16-bit storage types, so bytes and halves are shifted out of words.
// Requires a module-scope `w: array<u32>` binding.

fn wbyte(off: u32) -> u32 {
    return (w[off >> 2u] >> ((off & 3u) * 8u)) & 0xffu;
}

// Signed byte.
fn wi8(off: u32) -> i32 {
    return bitcast<i32>(wbyte(off) << 24u) >> 24u;
}

// 16-bit value at an even offset.
fn wu16(off: u32) -> u32 {
    return (w[off >> 2u] >> ((off & 2u) * 8u)) & 0xffffu;
}

fn wf16(off: u32) -> f32 {
    return unpack2x16float(wu16(off)).x;
}

// The word at a 4-aligned offset: every row and every quant field is word-aligned in the GPU's
// layout (src/backend/gpu/repack.rs regroups the formats whose blocks are not).
fn wword(off: u32) -> u32 {
    return w[off >> 2u];
}

// The four bytes of a word, lowest first.
fn bytes4(v: u32) -> vec4<u32> {
    return (vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

// The four bytes of a word as signed values, lowest first.
fn sbytes4(v: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
