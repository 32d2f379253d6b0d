// Q3_K, 110-byte blocks of 256 (8 chunks): hmask[32], qs[64], scales[12] (16 six-bit), d.
// Uploaded by pairs of blocks, hmask0 hmask1 qs0 qs1 scales0 scales1 d0 d1 (220 bytes,
// word-aligned).

// Scale j of the 12 scale bytes at `sc`.
fn q3k_scale(sc: u32, j: u32) -> f32 {
    var low: u32;
    if (j < 8u) {
        low = wbyte(sc + j) & 15u;
    } else {
        low = wbyte(sc + j - 8u) >> 4u;
    }
    let high = (wbyte(sc + 8u + j % 4u) >> (2u * (j / 4u))) & 3u;
    return f32(i32(low | (high << 4u)) - 32);
}

// Chunk `sub` takes bit pair sub % 4 of the 32 bytes qs[32 * (sub / 4)..] and bit
// 4 * (sub / 4) + sub % 4 of hmask (clear: subtract 4); each 16 elements have their own scale.
struct Chunk {
    qs: u32,
    hmask: u32,
    shift: u32,
    bit: u32,
    scale: vec2<f32>,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = row_off + (c / 16u) * 220u;
    let h = (c / 8u) % 2u;
    let sub = c % 8u;
    let half = sub / 4u;
    let k = sub % 4u;
    let d = wf16(pair + 216u + 2u * h);
    let sc = pair + 192u + 12u * h;
    return Chunk(
        pair + 64u + 64u * h + half * 32u,
        pair + 32u * h,
        2u * k,
        4u * half + k,
        d * vec2<f32>(q3k_scale(sc, sub * 2u), q3k_scale(sc, sub * 2u + 1u)),
    );
}

// Codes q | 4h (0..7; the value is scale * (code - 4): a clear hmask bit subtracts 4).
fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let q = (wword(ch.qs + 4u * i) >> ch.shift) & 0x03030303u;
    let h = (wword(ch.hmask + 4u * i) >> ch.bit) & 0x01010101u;
    return q | (h << 2u);
}

fn chunk_affine(ch: Chunk, half: u32) -> vec2<f32> {
    return vec2<f32>(ch.scale[half], -4.0 * ch.scale[half]);
}

//!include quant/packed.wgsl
