//! IQ4_XS: 256 weights in eight groups of 32, each a 4-bit index into IQ4_NL's level table with a
//! 6-bit group scale. Layout: `d: f16, scales_h: u16, scales_l: [u8; 4], qs: [u8; 128]`. Group
//! `g`'s scale is `d * (ls - 32)` where `ls` has its low 4 bits in nibble `g % 2` of
//! `scales_l[g / 2]` and its high 2 bits at bits `2g..2g+2` of `scales_h`; its 16 `qs` bytes
//! (at `8 + 16g`) hold the indices as Q4_0's do.

use super::iq4_nl::{LevelFit, fit_levels, levels, pack_nibbles};
use super::{AffineGroups, QK_K, Quantize, affine_block_format, f16_at, put_f16};

/// The IQ4_XS block format.
pub struct Iq4Xs;

/// The scale of each group of block `b`.
#[inline(always)]
fn group_scales(b: &[u8]) -> [f32; 8] {
    let d = f16_at(b, 0);
    let high = u16::from_le_bytes([b[2], b[3]]);
    std::array::from_fn(|g| {
        let low = (b[4 + g / 2] >> (4 * (g % 2))) & 0x0f;
        let ls = low as i32 | (((high >> (2 * g)) & 3) as i32) << 4;
        d * (ls - 32) as f32
    })
}

affine_block_format!(Iq4Xs, QK_K, 136);

/// Eight groups of signed levels.
impl AffineGroups for Iq4Xs {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        for (g, scale) in group_scales(b).into_iter().enumerate() {
            f(g, &levels(&b[8 + 16 * g..24 + 16 * g]), scale, 0.0);
        }
    }
}

impl Quantize for Iq4Xs {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        write_xs(&fit_levels(x, None), out)
    }

    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        write_xs(&fit_levels(x, Some(importance)), out)
    }
}

/// Stores `d`, the group codes (low nibbles in `scales_l`, high bit pairs in `scales_h`) and
/// the level indices.
fn write_xs(fit: &LevelFit, out: &mut [u8]) {
    put_f16(out, 0, fit.d);
    let mut high = 0u16;
    out[4..8].fill(0);
    for (g, &code) in fit.groups.iter().enumerate() {
        out[4 + g / 2] |= (code & 0x0f) << (4 * (g % 2));
        high |= u16::from(code >> 4) << (2 * g);
    }
    out[2..4].copy_from_slice(&high.to_le_bytes());
    for g in 0..8 {
        pack_nibbles(
            &fit.l[32 * g..32 * g + 32],
            &mut out[8 + 16 * g..24 + 16 * g],
        );
    }
}
