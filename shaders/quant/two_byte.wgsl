// Chunk c of a row of two-byte elements (F16, BF16) is elements 32c..32c+32 (rows are
// word-aligned).
struct Chunk {
    word: u32,
}

fn chunk_at(row_off: u32, c: u32) -> Chunk {
    return Chunk((row_off + c * 64u) / 4u);
}
