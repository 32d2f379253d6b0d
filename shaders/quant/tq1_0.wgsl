// TQ1_0, 54-byte blocks of 256: qs[48], qh[4], d (f16). Each byte holds base-3 digits as a
// fixed-point fraction: digit n is ((byte * 3^n mod 256) * 3) >> 8, code q in 0..3, value
// (q - 1) * d. qs[0..32] give elements 32n + m (n < 5), qs[32..48] elements 160 + 16n + m,
// qh elements 240 + 4n + m (n < 4). Uploaded by pairs, qs0 qs1 qh0 qh1 d0 d1 (108 bytes).
struct Chunk {
    pair: u32,
    h: u32,
    e: u32,
    d: f32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    let pair = row_off + (c / 16u) * 108u;
    let h = (c / 8u) % 2u;
    return Chunk(pair, h, 32u * (c % 8u), wf16(pair + 104u + 2u * h));
}

fn chunk_packed(ch: Chunk, i: u32) -> u32 {
    let e = ch.e + 4u * i;
    // The byte (of the block's 52) holding elements e..e+4, and which digit of it they are.
    var byte: u32;
    var n: u32;
    if (e < 160u) {
        byte = e % 32u;
        n = e / 32u;
    } else if (e < 240u) {
        byte = 32u + (e - 160u) % 16u;
        n = (e - 160u) / 16u;
    } else {
        byte = 48u;
        n = (e - 240u) / 4u;
    }
    var off = ch.pair + 48u * ch.h + byte;
    if (byte >= 48u) {
        off = ch.pair + 96u + 4u * ch.h;
    }
    var pow3 = 1u;
    for (var k = 0u; k < n; k++) {
        pow3 *= 3u;
    }
    let q = (bytes4(wword(off)) * pow3) & vec4<u32>(255u);
    let codes = (q * 3u) >> vec4<u32>(8u);
    return codes.x | (codes.y << 8u) | (codes.z << 16u) | (codes.w << 24u);
}

fn chunk_affine(ch: Chunk, _half: u32) -> vec2<f32> {
    return vec2<f32>(ch.d, -ch.d);
}

//!include quant/packed.wgsl
