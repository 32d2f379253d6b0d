// IQ4_NL's and IQ4_XS's 16 levels (llama.cpp's kvalues_iq4nl), four signed bytes to a word.
const IQ4_LEVELS = array<u32, 4>(0xbfad9881u, 0xf6eaddcfu, 0x26190d01u, 0x71594535u);

// The level of index `n` (0..16), as a byte.
fn iq4_level(n: u32) -> u32 {
    return (IQ4_LEVELS[n >> 2u] >> (8u * (n & 3u))) & 0xffu;
}

// Four indices, one in the low nibble of each byte of `nib`, as four levels (signed bytes).
fn iq4_levels(nib: u32) -> u32 {
    return iq4_level(nib & 15u) | (iq4_level((nib >> 8u) & 15u) << 8u)
        | (iq4_level((nib >> 16u) & 15u) << 16u) | (iq4_level(nib >> 24u) << 24u);
}

// Elements 4i..4i+4 of a chunk whose 16 index bytes start at `qs` (low nibbles are elements
// 0..16, as Q4_0's).
fn iq4_packed(qs: u32, i: u32) -> u32 {
    return iq4_levels((wword(qs + 4u * (i % 4u)) >> (4u * (i / 4u))) & 0x0f0f0f0fu);
}
