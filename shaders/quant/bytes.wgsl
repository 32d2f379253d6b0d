// Byte access into a weight tensor stored as array<u32> (little-endian GGUF bytes, unchanged).
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

// 32-bit value at an offset that is at least 2-aligned.
fn wu32(off: u32) -> u32 {
    if ((off & 3u) == 0u) {
        return w[off >> 2u];
    }
    return wu16(off) | (wu16(off + 2u) << 16u);
}

// Four bytes at any offset, as a little-endian u32.
fn wword(off: u32) -> u32 {
    let i = off >> 2u;
    let shift = (off & 3u) * 8u;
    if (shift == 0u) {
        return w[i];
    }
    return (w[i] >> shift) | (w[i + 1u] << (32u - shift));
}

// The four bytes of a word, lowest first.
fn bytes4(v: u32) -> vec4<u32> {
    return (vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

// The four bytes of a word as signed values, lowest first.
fn sbytes4(v: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
