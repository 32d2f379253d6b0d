//! Incremental detokenization that never emits a broken UTF-8 sequence.

/// Turns a stream of token byte strings into text, holding back an incomplete UTF-8 sequence
/// until the token that completes it arrives.
#[derive(Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    strip_leading_space: bool,
    started: bool,
}

impl StreamDecoder {
    /// A decoder; `strip_leading_space` drops one space at the very start (SentencePiece models
    /// whose tokenizer prepends one).
    pub fn new(strip_leading_space: bool) -> Self {
        StreamDecoder {
            pending: Vec::new(),
            strip_leading_space,
            started: false,
        }
    }

    /// Adds one token's bytes; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        if !self.started && !self.pending.is_empty() {
            self.started = true;
            if self.strip_leading_space && self.pending[0] == b' ' {
                self.pending.remove(0);
            }
        }
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    #[allow(clippy::expect_used, reason = "from_utf8 validated this prefix")]
                    let prefix =
                        std::str::from_utf8(&self.pending[..valid]).expect("validated prefix");
                    out.push_str(prefix);
                    match e.error_len() {
                        // Incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never become valid: replace them and go on.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Flushes whatever is held back (an unfinished sequence becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_split_multibyte_characters() {
        let mut d = StreamDecoder::new(false);
        let bytes = "é🔥".as_bytes();
        assert_eq!(d.push(&bytes[..1]), "");
        assert_eq!(d.push(&bytes[1..3]), "é");
        assert_eq!(d.push(&bytes[3..5]), "");
        assert_eq!(d.push(&bytes[5..]), "🔥");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn replaces_invalid_bytes_and_flushes_incomplete_ones() {
        let mut d = StreamDecoder::new(false);
        assert_eq!(d.push(&[b'a', 0xff, b'b']), "a\u{fffd}b");
        assert_eq!(d.push(&[0xe2, 0x82]), "");
        assert_eq!(d.finish(), "\u{fffd}");
    }

    #[test]
    fn strips_one_leading_space_when_asked() {
        let mut d = StreamDecoder::new(true);
        assert_eq!(d.push(b"  hi"), " hi");
        assert_eq!(d.push(b" there"), " there");
    }
}
