// Six-bit scale and min of group j (0..8) from the 12 bytes at s, shared by Q4_K and Q5_K.
fn k_scale_min(s: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(wbyte(s + j) & 63u), f32(wbyte(s + j + 4u) & 63u));
    }
    let sc = (wbyte(s + j + 4u) & 15u) | ((wbyte(s + j - 4u) >> 6u) << 4u);
    let m = (wbyte(s + j + 4u) >> 4u) | ((wbyte(s + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

// Scale and offset of group j of the Q4_K/Q5_K block at b (d at b, dmin at b + 2, scales at b + 4).
fn k_group(b: u32, j: u32) -> vec2<f32> {
    let sm = k_scale_min(b + 4u, j);
    return vec2<f32>(wf16(b) * sm.x, wf16(b + 2u) * sm.y);
}
