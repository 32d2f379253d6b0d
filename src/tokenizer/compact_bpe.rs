//! Byte-pair encoding over flat tables: the vocabulary's pieces live in one string, the merges in
//! one hash table keyed by the id pair.
//!
//! The `tokenizers` crate's BPE model keeps every piece twice as its own `String` (piece -> id
//! and id -> piece maps) next to a merge map, about 9 MB and 200k small allocations for a 49k
//! vocabulary — more than a tenth of a 135M model's memory. This model encodes exactly as that
//! one does (same merge order, byte fallback, unknown-token fusing, `ignore_merges`, subword
//! prefix and suffix; no dropout) in about a fifth of the memory, and loads faster.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use tokenizers::Token;

use crate::error::{Error, Result};

/// Where a piece sits in the text arena; `ABSENT` marks an id no piece has.
type Span = [u32; 2];
const ABSENT: Span = [u32::MAX; 2];

/// How a BPE vocabulary treats what it cannot spell.
#[derive(Clone, Debug, Default)]
pub struct BpeOptions {
    /// Token for a character with no piece (and no byte fallback).
    pub unk_token: Option<String>,
    /// Consecutive unknown characters become one unknown token.
    pub fuse_unk: bool,
    /// A character with no piece is spelled with `<0xAB>` byte pieces when they exist.
    pub byte_fallback: bool,
    /// A pre-token that is a piece of its own is taken whole, before any merging (Llama 3).
    pub ignore_merges: bool,
    /// Put in front of every character but a word's first (WordPiece-style vocabularies).
    pub continuing_subword_prefix: Option<String>,
    /// Put after a word's last character.
    pub end_of_word_suffix: Option<String>,
}

/// A BPE model: pieces by id, ids by piece, and merge ranks by id pair.
pub struct CompactBpe {
    text: String,
    spans: Vec<Span>,
    /// Ids by piece; a piece listed twice maps to its last id, as in `tokenizers`.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// `(left << 32) | right` -> (rank, merged id).
    merges: HashMap<u64, (u32, u32)>,
    options: BpeOptions,
    unk_id: Option<u32>,
    /// Byte-fallback pieces `<0x00>`..`<0xFF>`, when the vocabulary has them.
    byte_ids: Vec<Option<u32>>,
}

/// One symbol of a word being merged: a token covering `len` bytes, linked to its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Whether `ids` slots for a vocabulary of `entries` entries is a size to allocate: ids need not
/// be dense, but one claimed far past the entries would only drive an allocation.
pub(super) fn plausible_id_count(ids: usize, entries: usize) -> bool {
    ids <= 4 * entries + 1024
}

fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

impl CompactBpe {
    /// Builds the model from `(id, piece)` entries and merges in rank order (best first).
    /// Ids need not be dense, but the largest may not exceed four times the entry count (a
    /// claimed id drives an allocation), and no id may stand for two pieces — both refused,
    /// where `tokenizers` accepts them.
    pub fn new<'a>(
        pieces: impl ExactSizeIterator<Item = (u32, &'a str)>,
        merges: impl IntoIterator<Item = (&'a str, &'a str)>,
        options: BpeOptions,
    ) -> Result<CompactBpe> {
        let mut model = CompactBpe {
            text: String::new(),
            spans: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            merges: HashMap::new(),
            options,
            unk_id: None,
            byte_ids: Vec::new(),
        };
        let count = pieces.len();
        model.spans.reserve(count);
        for (id, piece) in pieces {
            let slot = id as usize;
            if !plausible_id_count(slot + 1, count) {
                return Err(Error::Tokenizer(format!(
                    "vocabulary id {id} is far beyond its {count} pieces"
                )));
            }
            if slot >= model.spans.len() {
                model.spans.resize(slot + 1, ABSENT);
            } else if model.spans[slot] != ABSENT {
                // `tokenizers` would let both pieces stand for the id; no real vocabulary does.
                return Err(Error::Tokenizer(format!(
                    "vocabulary id {id} is given to two pieces"
                )));
            }
            let start = model.text.len();
            model.text.push_str(piece);
            let end = u32::try_from(model.text.len())
                .map_err(|_| Error::Tokenizer("the vocabulary's pieces exceed 4 GiB".into()))?;
            model.spans[slot] = [start as u32, end];
            model.insert_index(id);
        }
        model.text.shrink_to_fit();
        model.spans.shrink_to_fit();
        model.unk_id = model
            .options
            .unk_token
            .as_deref()
            .and_then(|t| model.id_of(t));
        if model.options.byte_fallback {
            model.byte_ids = (0..=255u8)
                .map(|b| model.id_of(&format!("<0x{b:02X}>")))
                .collect();
        }
        model.add_merges(merges)?;
        Ok(model)
    }

    fn insert_index(&mut self, id: u32) {
        let (text, spans, hasher) = (&self.text, &self.spans, &self.hasher);
        let piece = piece_in(text, spans, id).unwrap_or_default();
        let hash = hasher.hash_one(piece);
        let same = |&other: &u32| piece_in(text, spans, other) == Some(piece);
        match self.index.find_mut(hash, same) {
            Some(slot) => *slot = id,
            None => {
                self.index.insert_unique(hash, id, |&other| {
                    hasher.hash_one(piece_in(text, spans, other).unwrap_or_default())
                });
            }
        }
    }

    fn add_merges<'a>(
        &mut self,
        merges: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        let prefix_len = self
            .options
            .continuing_subword_prefix
            .as_deref()
            .map_or(0, str::len);
        let merges = merges.into_iter();
        self.merges.reserve(merges.size_hint().0);
        let mut joined = String::new();
        for (rank, (a, b)) in merges.enumerate() {
            let id = |piece: &str| {
                self.id_of(piece).ok_or_else(|| {
                    Error::Tokenizer(format!("merge {rank}: {piece:?} is not in the vocabulary"))
                })
            };
            let (left, right) = (id(a)?, id(b)?);
            let tail = b.get(prefix_len..).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "merge {rank}'s second token {b:?} is shorter than the continuing-subword prefix"
                ))
            })?;
            joined.clear();
            joined.push_str(a);
            joined.push_str(tail);
            let merged = id(&joined)?;
            let rank = u32::try_from(rank)
                .map_err(|_| Error::Tokenizer("more than 2^32 merges".into()))?;
            self.merges.insert(pair_key(left, right), (rank, merged));
        }
        self.merges.shrink_to_fit();
        Ok(())
    }

    /// The id of `piece`.
    pub fn id_of(&self, piece: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(piece);
        self.index
            .find(hash, |&id| self.piece_of(id) == Some(piece))
            .copied()
    }

    /// The piece `id` stands for.
    pub fn piece_of(&self, id: u32) -> Option<&str> {
        piece_in(&self.text, &self.spans, id)
    }

    /// Number of ids (the largest plus one).
    pub fn id_count(&self) -> usize {
        self.spans.len()
    }

    /// Number of distinct pieces (what `tokenizers` counts as the vocabulary's size, and from
    /// which it numbers added tokens that are not pieces).
    pub fn piece_count(&self) -> usize {
        self.index.len()
    }

    /// Every piece with its id.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u32)> {
        self.index
            .iter()
            .filter_map(|&id| self.piece_of(id).map(|p| (p, id)))
    }

    /// Splits one pre-token into tokens: its characters (or their bytes, or the unknown token),
    /// then the best-ranked adjacent merge, leftmost first, until none applies.
    pub fn tokenize(&self, word: &str) -> tokenizers::Result<Vec<Token>> {
        if word.is_empty() {
            return Ok(Vec::new());
        }
        if self.options.ignore_merges
            && let Some(id) = self.id_of(word)
        {
            return Ok(vec![Token::new(id, word.to_string(), (0, word.len()))]);
        }
        let mut symbols = self.symbols(word)?;
        self.merge_all(&mut symbols);
        let mut start = 0;
        Ok(symbols
            .iter()
            .filter(|s| s.len > 0)
            .map(|s| {
                let offsets = (start, start + s.len);
                start += s.len;
                let value = self.piece_of(s.id).unwrap_or_default().to_string();
                Token::new(s.id, value, offsets)
            })
            .collect())
    }

    /// The word's characters as symbols, before any merge.
    fn symbols(&self, word: &str) -> tokenizers::Result<Vec<Symbol>> {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        let push = |symbols: &mut Vec<Symbol>, id: u32, len: usize| {
            let at = symbols.len();
            if let Some(last) = symbols.last_mut() {
                last.next = Some(at);
            }
            let prev = at.checked_sub(1);
            symbols.push(Symbol {
                id,
                len,
                prev,
                next: None,
            });
        };
        let o = &self.options;
        let mut unk: Option<(u32, usize)> = None;
        let mut chars = word.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let is_last = chars.peek().is_none();
            let byte_len = c.len_utf8();
            let mut s = Cow::Borrowed(&word[i..i + byte_len]);
            if i > 0
                && let Some(prefix) = &o.continuing_subword_prefix
            {
                s = format!("{prefix}{s}").into();
            }
            if is_last && let Some(suffix) = &o.end_of_word_suffix {
                s = format!("{s}{suffix}").into();
            }
            if let Some(id) = self.id_of(&s) {
                if let Some((unk_id, unk_len)) = unk.take() {
                    push(&mut symbols, unk_id, unk_len);
                }
                push(&mut symbols, id, byte_len);
                continue;
            }
            if o.byte_fallback {
                let bytes: Option<Vec<u32>> = s
                    .bytes()
                    .map(|b| self.byte_ids.get(b as usize).copied().flatten())
                    .collect();
                // As in `tokenizers`, a pending unknown token stays pending past these bytes.
                if let Some(bytes) = bytes {
                    for id in bytes {
                        push(&mut symbols, id, 1);
                    }
                    continue;
                }
            }
            if let Some(unk_token) = &o.unk_token {
                let unk_id = self.unk_id.ok_or_else(|| {
                    format!("the unknown token {unk_token:?} is not in the vocabulary")
                })?;
                unk = match unk {
                    Some((id, len)) if o.fuse_unk => Some((id, len + byte_len)),
                    Some((id, len)) => {
                        push(&mut symbols, id, len);
                        Some((unk_id, byte_len))
                    }
                    None => Some((unk_id, byte_len)),
                };
            }
        }
        if let Some((id, len)) = unk {
            push(&mut symbols, id, len);
        }
        Ok(symbols)
    }

    fn merge_of(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.merges.get(&pair_key(left, right)).copied()
    }

    /// Applies merges lowest rank first (then leftmost); a merged-away symbol keeps `len` 0.
    fn merge_all(&self, symbols: &mut [Symbol]) {
        let mut queue: BinaryHeap<Reverse<(u32, usize, u32)>> = symbols
            .windows(2)
            .enumerate()
            .filter_map(|(pos, w)| {
                self.merge_of(w[0].id, w[1].id)
                    .map(|(rank, merged)| Reverse((rank, pos, merged)))
            })
            .collect();
        while let Some(Reverse((_, pos, merged))) = queue.pop() {
            let left = symbols[pos];
            let Some(next) = left.next.filter(|_| left.len > 0) else {
                continue;
            };
            let right = symbols[next];
            // A queued merge is stale once either side has changed.
            if self.merge_of(left.id, right.id).map(|m| m.1) != Some(merged) {
                continue;
            }
            symbols[pos] = Symbol {
                id: merged,
                len: left.len + right.len,
                prev: left.prev,
                next: right.next,
            };
            symbols[next].len = 0;
            if let Some(after) = right.next {
                symbols[after].prev = Some(pos);
                if let Some((rank, m)) = self.merge_of(merged, symbols[after].id) {
                    queue.push(Reverse((rank, pos, m)));
                }
            }
            if let Some(before) = left.prev
                && let Some((rank, m)) = self.merge_of(symbols[before].id, merged)
            {
                queue.push(Reverse((rank, before, m)));
            }
        }
    }
}

fn piece_in<'t>(text: &'t str, spans: &[Span], id: u32) -> Option<&'t str> {
    let &[start, end] = spans.get(id as usize)?;
    if [start, end] == ABSENT {
        return None;
    }
    text.get(start as usize..end as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(pieces: &[&str], merges: &[(&str, &str)], options: BpeOptions) -> CompactBpe {
        CompactBpe::new(
            (0..pieces.len() as u32).zip(pieces.iter().copied()),
            merges.iter().copied(),
            options,
        )
        .unwrap()
    }

    fn ids(m: &CompactBpe, word: &str) -> Vec<u32> {
        m.tokenize(word).unwrap().iter().map(|t| t.id).collect()
    }

    #[test]
    fn merges_by_rank_then_leftmost() {
        // "aaa": (a a) is the only merge; the leftmost pair merges first.
        let m = model(
            &["a", "b", "aa", "ab", "aab"],
            &[("a", "a"), ("aa", "b")],
            BpeOptions::default(),
        );
        assert_eq!(ids(&m, "aaa"), vec![2, 0]);
        assert_eq!(ids(&m, "aab"), vec![4]);
        // The better-ranked merge wins over the leftmost one.
        let m = model(
            &["a", "b", "ab", "ba"],
            &[("b", "a"), ("a", "b")],
            BpeOptions::default(),
        );
        assert_eq!(ids(&m, "aba"), vec![0, 3]);
        let toks = m.tokenize("aba").unwrap();
        assert_eq!(toks[1].offsets, (1, 3));
        assert_eq!(toks[1].value, "ba");
    }

    #[test]
    fn repeated_piece_maps_to_its_last_id() {
        let m = model(&["x", "y", "x"], &[], BpeOptions::default());
        assert_eq!(m.id_of("x"), Some(2));
        assert_eq!(m.piece_of(0), Some("x"));
        assert_eq!((m.id_count(), m.piece_count()), (3, 2));
    }

    #[test]
    fn byte_fallback_and_fused_unknowns() {
        let mut pieces: Vec<String> = vec!["<unk>".into(), "a".into()];
        pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let options = BpeOptions {
            unk_token: Some("<unk>".into()),
            fuse_unk: true,
            byte_fallback: true,
            ..BpeOptions::default()
        };
        let m = model(&refs, &[], options.clone());
        // 'é' is two bytes: 0xC3 0xA9, ids 2 + byte.
        assert_eq!(ids(&m, "aé"), vec![1, 2 + 0xC3, 2 + 0xA9]);
        let m = model(&["<unk>", "a"], &[], options);
        assert_eq!(ids(&m, "éé a"), vec![0, 1]);
        assert_eq!(m.tokenize("éé a").unwrap()[0].offsets, (0, 5));
    }

    #[test]
    fn missing_merge_piece_and_short_prefixed_piece_are_errors() {
        let err = CompactBpe::new([(0, "a")].into_iter(), [("a", "b")], BpeOptions::default());
        assert!(err.is_err());
        let options = BpeOptions {
            continuing_subword_prefix: Some("##".into()),
            ..BpeOptions::default()
        };
        let err = CompactBpe::new([(0, "a"), (1, "#")].into_iter(), [("a", "#")], options);
        assert!(err.is_err());
        let err = CompactBpe::new([(u32::MAX, "a")].into_iter(), [], BpeOptions::default());
        assert!(err.is_err());
        let err = CompactBpe::new([(0, "a"), (0, "b")].into_iter(), [], BpeOptions::default());
        assert!(err.is_err());
    }
}
