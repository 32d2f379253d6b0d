// What the lattice i-quants (IQ2_*, IQ3_*, IQ1_*) share. Their table of grid entries is at the
// start of each weight buffer (src/backend/gpu/repack.rs, `gpu_prefix`), GRID_BYTES long, one
// signed byte per value; the rows follow it. Each decoder defines GRID_BYTES.

// The grid word at byte `off` of the table, times signs: bit j of `signs` negates byte j.
fn signed_grid(off: u32, signs: u32) -> u32 {
    let bits = (vec4<u32>(signs) >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u);
    return pack4xI8(unpack4xI8(wword(off)) * (vec4<i32>(1) - 2 * vec4<i32>(bits)));
}

// Eight sign bits from the seven stored: the eighth makes the count of negatives even.
fn parity_signs(seven: u32) -> u32 {
    let s = seven & 127u;
    return s | ((countOneBits(s) & 1u) << 7u);
}

// IQ1's codes: the grid word at byte `off` (values -1, 0, 1) as 8 * value + delta.
fn iq1_grid(off: u32, delta: i32) -> u32 {
    return pack4xI8(8 * unpack4xI8(wword(off)) + vec4<i32>(delta));
}
