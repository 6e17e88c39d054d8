//! The hash chain: `h_n = SHA-256(h_{n-1} ‖ line_n)` over the exact bytes of
//! each line, its `\n` included.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::hex;

/// Bytes of each line's head kept in a checkpoint's `line_heads`, so that a
/// verifier can name the first line that differs within a checkpoint.
pub const LINE_HEAD_PREFIX: usize = 4;

/// Head prefixes kept at most between two checkpoints (4 Mi lines): past
/// that a checkpoint goes without `line_heads`, so that memory stays bounded
/// when checkpoints cannot be written.
pub const MAX_LINE_HEADS: usize = 16 << 20;

/// Domain separation of the first head: no other SHA-256 input of auditcol
/// starts with these bytes.
const GENESIS_DOMAIN: &[u8] = b"auditcol-trail-v1";

/// A chain head: a SHA-256 digest, written as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Head(pub [u8; 32]);

impl Head {
    /// Lower-case hex, 64 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Head> {
        let bytes = hex::decode(text)?;
        Some(Head(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Head {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Head::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hexadecimal digits (a SHA-256)"))
    }
}

/// `len(s)` as 4 bytes big-endian, then the UTF-8 bytes of `s`: the string
/// encoding of every hashed or signed structure.
pub(crate) fn put_str(out: &mut impl Extend<u8>, s: &str) {
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend(len.to_be_bytes());
    out.extend(s.bytes());
}

/// `h_0` of a trail: `SHA-256("auditcol-trail-v1" ‖ str(exporter) ‖ str(trail))`.
pub fn genesis(exporter: &str, trail: &str) -> Head {
    let mut input = Vec::with_capacity(GENESIS_DOMAIN.len() + 8 + exporter.len() + trail.len());
    input.extend_from_slice(GENESIS_DOMAIN);
    put_str(&mut input, exporter);
    put_str(&mut input, trail);
    Head(Sha256::digest(&input).into())
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// `SHA-256(previous ‖ line)`: the head after `line` (its `\n` included).
///
/// The hot loop of writing and verifying, so it drives SHA-256's block
/// function directly (runtime-detected SHA extensions, as `sha2` does):
/// the blocks after the first are hashed in place from `line`, and only the
/// first and the padded last are assembled. A property test holds it equal
/// to `Sha256::digest(previous ‖ line)`.
pub fn next_head(previous: &Head, line: &[u8]) -> Head {
    let mut state = SHA256_IV;
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(&previous.0);
    let bits = ((32 + line.len()) as u64).wrapping_mul(8);
    let tail = if line.len() >= 32 {
        block[32..].copy_from_slice(&line[..32]);
        sha2::block_api::compress256(&mut state, &[block]);
        let (blocks, tail) = line[32..].as_chunks::<64>();
        sha2::block_api::compress256(&mut state, blocks);
        block = [0u8; 64];
        block[..tail.len()].copy_from_slice(tail);
        tail.len()
    } else {
        block[32..32 + line.len()].copy_from_slice(line);
        32 + line.len()
    };
    // Padding: 0x80, zeros, the length in bits as 8 bytes big-endian.
    block[tail] = 0x80;
    if tail >= 56 {
        sha2::block_api::compress256(&mut state, &[block]);
        block = [0u8; 64];
    }
    block[56..].copy_from_slice(&bits.to_be_bytes());
    sha2::block_api::compress256(&mut state, &[block]);
    let mut head = [0u8; 32];
    for (out, word) in head.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    Head(head)
}

/// Hashes a stream of bytes into the chain, line by line, in pieces of any
/// size: a line split across two pieces is hashed as it comes, never copied.
///
/// ```
/// use auditcol_integrity::chain::{ChainHasher, genesis, next_head};
/// let h0 = genesis("file/audit", "00112233445566778899aabbccddeeff");
/// let mut chain = ChainHasher::new(h0);
/// chain.feed(b"one\ntw");
/// chain.feed(b"o\n");
/// assert_eq!(chain.lines(), 2);
/// assert_eq!(chain.head(), next_head(&next_head(&h0, b"one\n"), b"two\n"));
/// ```
#[derive(Clone)]
pub struct ChainHasher {
    head: Head,
    lines: u64,
    bytes: u64,
    /// The hasher of a line begun but not yet ended by `\n`.
    partial: Option<Sha256>,
    partial_len: u64,
    /// The first [`LINE_HEAD_PREFIX`] bytes of the head after each line,
    /// since the last [`take_line_heads`](Self::take_line_heads), up to
    /// [`MAX_LINE_HEADS`] bytes.
    line_heads: Vec<u8>,
}

impl ChainHasher {
    /// A chain continuing from `head`, with no line yet.
    pub fn new(head: Head) -> Self {
        Self {
            head,
            lines: 0,
            bytes: 0,
            partial: None,
            partial_len: 0,
            line_heads: Vec::new(),
        }
    }

    /// A chain that has hashed `lines` lines of `bytes` bytes up to `head`
    /// (as a checkpoint says).
    pub fn resume(head: Head, lines: u64, bytes: u64) -> Self {
        Self {
            lines,
            bytes,
            ..Self::new(head)
        }
    }

    /// The head after the last complete line.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Complete lines hashed.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes of the complete lines hashed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes of a line begun but not ended (0 when the last byte fed was `\n`).
    pub fn partial_len(&self) -> u64 {
        self.partial_len
    }

    /// The head prefixes of the lines hashed since the last call (or since
    /// the start), [`LINE_HEAD_PREFIX`] bytes per line; clears them.
    pub fn take_line_heads(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.line_heads)
    }

    /// The head prefixes gathered so far, without clearing them.
    pub fn line_heads(&self) -> &[u8] {
        &self.line_heads
    }

    /// Forgets a line begun but not ended (it was cut off the file).
    pub fn discard_partial(&mut self) {
        self.partial = None;
        self.partial_len = 0;
    }

    /// Hashes all of `data`.
    pub fn feed(&mut self, data: &[u8]) {
        self.feed_until(data, u64::MAX);
    }

    /// Hashes `data` until [`lines`](Self::lines) reaches `until_line` or
    /// `data` ends; returns how many bytes of `data` it took.
    pub fn feed_until(&mut self, data: &[u8], until_line: u64) -> usize {
        let mut rest = data;
        while self.lines < until_line {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                if !rest.is_empty() {
                    self.partial
                        .get_or_insert_with(|| {
                            let mut hasher = Sha256::new();
                            hasher.update(self.head.0);
                            hasher
                        })
                        .update(rest);
                    self.partial_len += rest.len() as u64;
                    rest = &[];
                }
                break;
            };
            let line = &rest[..=end];
            self.head = match self.partial.take() {
                Some(mut hasher) => {
                    hasher.update(line);
                    Head(hasher.finalize().into())
                }
                None => next_head(&self.head, line),
            };
            if self.line_heads.len() < MAX_LINE_HEADS {
                self.line_heads
                    .extend_from_slice(&self.head.0[..LINE_HEAD_PREFIX]);
            }
            self.lines += 1;
            self.bytes += self.partial_len + line.len() as u64;
            self.partial_len = 0;
            rest = &rest[end + 1..];
        }
        data.len() - rest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_sha256_of_the_documented_encoding() {
        // "auditcol-trail-v1" ‖ 00 00 00 01 "e" ‖ 00 00 00 02 "ab"
        let mut input = b"auditcol-trail-v1".to_vec();
        input.extend_from_slice(&[0, 0, 0, 1, b'e', 0, 0, 0, 2, b'a', b'b']);
        assert_eq!(
            genesis("e", "ab").0,
            <[u8; 32]>::from(Sha256::digest(&input))
        );
    }

    #[test]
    fn next_head_hashes_the_previous_head_then_the_line() {
        let previous = Head([7; 32]);
        let mut input = vec![7u8; 32];
        input.extend_from_slice(b"line\n");
        assert_eq!(
            next_head(&previous, b"line\n").0,
            <[u8; 32]>::from(Sha256::digest(&input))
        );
    }

    proptest::proptest! {
        #[test]
        fn next_head_is_sha256_of_the_previous_head_and_the_line(
            previous in proptest::prelude::any::<[u8; 32]>(),
            line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            let mut input = previous.to_vec();
            input.extend_from_slice(&line);
            let expected: [u8; 32] = Sha256::digest(&input).into();
            proptest::prop_assert_eq!(next_head(&Head(previous), &line).0, expected);
        }
    }

    #[test]
    fn next_head_is_sha256_at_every_padding_boundary() {
        for len in 0..200 {
            let line = vec![b'x'; len];
            let mut input = vec![9u8; 32];
            input.extend_from_slice(&line);
            let expected: [u8; 32] = Sha256::digest(&input).into();
            assert_eq!(next_head(&Head([9; 32]), &line).0, expected, "length {len}");
        }
    }

    #[test]
    fn pieces_of_any_size_give_the_same_chain() {
        let text = b"first line\nsecond\n\nfourth, a longer line than the others by some way\n";
        let mut whole = ChainHasher::new(Head::default());
        whole.feed(text);
        for piece in 1..text.len() {
            let mut chain = ChainHasher::new(Head::default());
            for chunk in text.chunks(piece) {
                chain.feed(chunk);
            }
            assert_eq!(chain.head(), whole.head(), "pieces of {piece}");
            assert_eq!(chain.lines(), 4);
            assert_eq!(chain.bytes(), text.len() as u64);
        }
    }

    #[test]
    fn a_line_without_its_newline_is_not_in_the_chain_yet() {
        let mut chain = ChainHasher::new(Head::default());
        chain.feed(b"one\ntw");
        assert_eq!(chain.lines(), 1);
        assert_eq!(chain.bytes(), 4);
        assert_eq!(chain.partial_len(), 2);
        assert_eq!(chain.head(), next_head(&Head::default(), b"one\n"));
    }

    #[test]
    fn feed_until_stops_at_the_line_asked_for() {
        let mut chain = ChainHasher::new(Head::default());
        let data = b"a\nb\nc\n";
        let taken = chain.feed_until(data, 2);
        assert_eq!(taken, 4);
        assert_eq!(chain.lines(), 2);
        assert_eq!(chain.feed_until(&data[taken..], 2), 0);
        assert_eq!(chain.feed_until(&data[taken..], 3), 2);
    }

    #[test]
    fn each_line_leaves_the_prefix_of_its_head() {
        let mut chain = ChainHasher::new(Head::default());
        chain.feed(b"a\nb\n");
        let h1 = next_head(&Head::default(), b"a\n");
        let h2 = next_head(&h1, b"b\n");
        assert_eq!(chain.line_heads(), [&h1.0[..4], &h2.0[..4]].concat());
        assert_eq!(chain.take_line_heads().len(), 8);
        assert!(chain.line_heads().is_empty());
    }

    #[test]
    fn heads_round_trip_through_hex() {
        let head = next_head(&Head::default(), b"x\n");
        assert_eq!(Head::from_hex(&head.to_hex()), Some(head));
        assert_eq!(Head::from_hex("abc"), None);
        assert_eq!(Head::from_hex(&"zz".repeat(32)), None);
    }
}
