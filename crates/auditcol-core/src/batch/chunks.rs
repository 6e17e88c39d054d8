//! [`Chunks`]: an encoded message as it arrived, in pieces — the DATA frames
//! of an HTTP/2 stream — read in place, without joining them.
//!
//! A gRPC request of 512 audit records arrives in a dozen 16 KiB frames.
//! Joining them into one buffer cost a copy of every byte (290 instructions
//! per record, a quarter of what the gRPC transport added over HTTP/1).
//! Decoding reads the message's structure across the cuts instead: a
//! field's head that straddles one is read from a few bytes copied onto the
//! stack ([`read_head`]), and a record stays a slice of its frame. Only a
//! record (or a container's header) that straddles a cut is copied: one in
//! forty at 370 bytes a record.

use std::io::Read;
use std::ops::Range;

use auditcol_model::wire::{HeadValue, MAX_HEAD_LEN, WireError, read_head, short_len_head};
use bytes::{Bytes, BytesMut};

/// An encoded message held as the pieces it arrived in.
///
/// ```
/// use auditcol_core::batch::Chunks;
/// let mut message = Chunks::new();
/// message.push(bytes::Bytes::from_static(b"hello, "));
/// message.push(bytes::Bytes::from_static(b"world"));
/// assert_eq!((message.len(), message.pieces()), (12, 2));
/// let mut start = [0u8; 9];
/// assert_eq!(message.copy_at(3, &mut start), 9);
/// assert_eq!(&start, b"lo, world");
/// ```
#[derive(Clone, Default, Debug)]
pub struct Chunks {
    parts: Vec<Bytes>,
    /// Where each part ends in the message: a running total.
    ends: Vec<usize>,
}

impl Chunks {
    /// No bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes` (an empty piece is not kept).
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.ends.push(self.len() + bytes.len());
        self.parts.push(bytes);
    }

    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// True when it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// How many pieces hold it.
    pub fn pieces(&self) -> usize {
        self.parts.len()
    }

    /// Copies the bytes from `at` on into `out`, as many as there are;
    /// returns how many.
    pub fn copy_at(&self, at: usize, out: &mut [u8]) -> usize {
        let mut filled = 0;
        let mut part = self.part_of(at);
        let mut pos = at;
        while filled < out.len() && part < self.parts.len() {
            let bytes = &self.parts[part];
            let local = pos - (self.ends[part] - bytes.len());
            let n = (bytes.len() - local).min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&bytes[local..local + n]);
            filled += n;
            pos += n;
            part += 1;
        }
        filled
    }

    /// Drops the first `n` bytes (a frame's prefix), keeping the rest in place.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len());
        let first = self.part_of(n);
        let mut rest = Chunks::new();
        if first < self.parts.len() {
            let local = n - (self.ends[first] - self.parts[first].len());
            rest.push(self.parts[first].slice(local..));
            for part in self.parts.drain(first + 1..) {
                rest.push(part);
            }
        }
        *self = rest;
    }

    /// Reads the message from its start (to decompress it).
    pub fn reader(&self) -> impl Read + '_ {
        ChunksReader {
            parts: &self.parts,
            part: 0,
            offset: 0,
        }
    }

    /// The index of the part that holds byte `at` (`pieces()` past the end).
    fn part_of(&self, at: usize) -> usize {
        self.ends.partition_point(|&end| end <= at)
    }

    /// The bytes of `range`, which must lie in the message: a slice of the
    /// piece that holds them, or a copy when they straddle a cut.
    pub(crate) fn piece(&self, range: Range<usize>) -> Piece<'_> {
        let part = if self.parts.len() == 1 {
            0
        } else {
            self.part_of(range.start)
        };
        let Some(end) = self.ends.get(part).copied() else {
            return Piece::Copied(Bytes::new());
        };
        if range.end <= end {
            let start = end - self.parts[part].len();
            return Piece::Within(&self.parts[part], range.start - start..range.end - start);
        }
        let mut out = BytesMut::with_capacity(range.len());
        for (bytes, end) in self.parts[part..].iter().zip(&self.ends[part..]) {
            let start = end - bytes.len();
            let from = range.start.max(start) - start;
            let to = range.end.min(*end) - start;
            out.extend_from_slice(&bytes[from..to]);
            if range.end <= *end {
                break;
            }
        }
        Piece::Copied(out.freeze())
    }

    /// [`Chunks::piece`] of bytes a field iterator located.
    #[inline]
    pub(crate) fn piece_at(&self, at: Located) -> Piece<'_> {
        if let Some(part) = at.part {
            let start = self.ends[part] - self.parts[part].len();
            return Piece::Within(
                &self.parts[part],
                at.range.start - start..at.range.end - start,
            );
        }
        self.piece(at.range)
    }

    /// The fields of the message (or embedded message) in `range`, read
    /// across the cuts: the same fields and errors as
    /// [`auditcol_model::wire::Fields`] over the joined bytes.
    pub(crate) fn fields(&self, range: Range<usize>) -> ChunkFields<'_> {
        ChunkFields::new(self, range)
    }
}

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Self {
        let mut chunks = Chunks::new();
        chunks.push(bytes);
        chunks
    }
}

impl From<Vec<u8>> for Chunks {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl FromIterator<Bytes> for Chunks {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut chunks = Chunks::new();
        for bytes in iter {
            chunks.push(bytes);
        }
        chunks
    }
}

struct ChunksReader<'a> {
    parts: &'a [Bytes],
    part: usize,
    offset: usize,
}

impl Read for ChunksReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(part) = self.parts.get(self.part) else {
            return Ok(0);
        };
        let n = (part.len() - self.offset).min(buf.len());
        buf[..n].copy_from_slice(&part[self.offset..self.offset + n]);
        self.offset += n;
        if self.offset == part.len() {
            self.part += 1;
            self.offset = 0;
        }
        Ok(n)
    }
}

/// Bytes of a message: where they lie in one piece, or a copy.
pub(crate) enum Piece<'a> {
    Within(&'a Bytes, Range<usize>),
    Copied(Bytes),
}

impl Piece<'_> {
    /// The buffer the bytes are a slice of.
    pub(crate) fn source(&self) -> &Bytes {
        match self {
            Piece::Within(source, _) => source,
            Piece::Copied(bytes) => bytes,
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Piece::Within(source, range) => &source[range.clone()],
            Piece::Copied(bytes) => bytes,
        }
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Piece::Within(source, range) => source.slice(range),
            Piece::Copied(bytes) => bytes,
        }
    }
}

/// One field of a message in [`Chunks`], its payload given by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkField {
    pub(crate) number: u32,
    /// The whole field, head and payload.
    pub(crate) span: Range<usize>,
    pub(crate) value: ChunkValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChunkValue {
    Varint(u64),
    Fixed64(u64),
    /// Length-delimited: where its payload is.
    Bytes(Located),
    Fixed32(u32),
}

/// Where bytes lie in a message, and the part that holds them all when
/// that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) range: Range<usize>,
    pub(crate) part: Option<usize>,
}

impl ChunkValue {
    pub(crate) fn bytes(&self) -> Option<Located> {
        match self {
            ChunkValue::Bytes(at) => Some(at.clone()),
            _ => None,
        }
    }
}

/// See [`Chunks::fields`]; yields an error once, then stops.
pub(crate) struct ChunkFields<'a> {
    chunks: &'a Chunks,
    pos: usize,
    end: usize,
    /// The part that holds `pos` (or held it last), its bytes, and where
    /// they start in the message.
    part: usize,
    bytes: &'a [u8],
    base: usize,
    failed: bool,
}

impl<'a> ChunkFields<'a> {
    fn new(chunks: &'a Chunks, range: Range<usize>) -> Self {
        let mut fields = ChunkFields {
            chunks,
            pos: range.start,
            end: range.end,
            part: 0,
            bytes: &[],
            base: 0,
            failed: false,
        };
        fields.seek();
        fields
    }

    /// Moves to the part that holds `pos`.
    fn seek(&mut self) {
        let chunks = self.chunks;
        self.part = chunks.part_of(self.pos);
        if let Some(bytes) = chunks.parts.get(self.part) {
            self.bytes = bytes;
            self.base = chunks.ends[self.part] - bytes.len();
        }
    }
}

impl Iterator for ChunkFields<'_> {
    type Item = Result<ChunkField, WireError>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        // The usual field: a short head, and all of it in the current part.
        if let Some(in_part) = self.bytes.get(self.pos - self.base..)
            && let Some((number, len, head)) = short_len_head(in_part)
            && head + len <= (self.end - self.pos).min(in_part.len())
        {
            let start = self.pos;
            self.pos = start + head + len;
            return Some(Ok(ChunkField {
                number,
                span: start..self.pos,
                value: ChunkValue::Bytes(Located {
                    range: start + head..self.pos,
                    part: Some(self.part),
                }),
            }));
        }
        self.next_slow()
    }
}

impl ChunkFields<'_> {
    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<ChunkField, WireError>> {
        if self.pos - self.base >= self.bytes.len() {
            self.seek();
        }
        let in_part = &self.bytes[self.pos - self.base..];
        let remaining = self.end - self.pos;
        let head = if in_part.len() >= remaining.min(MAX_HEAD_LEN) {
            read_head(in_part, remaining)
        } else {
            // The head straddles a cut.
            let mut window = [0u8; MAX_HEAD_LEN];
            let n = self
                .chunks
                .copy_at(self.pos, &mut window[..remaining.min(MAX_HEAD_LEN)]);
            read_head(&window[..n], remaining)
        };
        let head = match head {
            Ok(head) => head,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let start = self.pos;
        let body = start + head.len;
        let (value, end) = match head.value {
            HeadValue::Len(n) => (
                ChunkValue::Bytes(Located {
                    range: body..body + n,
                    part: None,
                }),
                body + n,
            ),
            HeadValue::Varint(v) => (ChunkValue::Varint(v), body),
            HeadValue::Fixed64(v) => (ChunkValue::Fixed64(v), body),
            HeadValue::Fixed32(v) => (ChunkValue::Fixed32(v), body),
        };
        self.pos = end;
        Some(Ok(ChunkField {
            number: head.number,
            span: start..end,
            value,
        }))
    }
}

/// `bytes` cut before each of `cuts` (in any order; past the end is the end),
/// each piece in a buffer of its own.
#[cfg(test)]
pub(crate) fn cut(bytes: &[u8], cuts: &[usize]) -> Chunks {
    let mut points: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| Bytes::copy_from_slice(&bytes[w[0]..w[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_model::wire::{Fields, WireValue};

    #[test]
    fn pieces_are_slices_within_a_part_and_copies_across() {
        let message = cut(b"abcdefghij", &[4, 7]);
        assert_eq!(message.pieces(), 3);
        assert!(matches!(message.piece(4..7), Piece::Within(_, _)));
        assert_eq!(message.piece(4..7).as_slice(), b"efg");
        let across = message.piece(2..9);
        assert!(matches!(across, Piece::Copied(_)));
        assert_eq!(across.as_slice(), b"cdefghi");
        assert_eq!(message.piece(0..10).as_slice(), b"abcdefghij");
        let mut read = Vec::new();
        message.reader().read_to_end(&mut read).unwrap();
        assert_eq!(read, b"abcdefghij");
        let mut rest = message.clone();
        rest.advance(5);
        assert_eq!(rest.piece(0..5).as_slice(), b"fghij");
        assert_eq!(rest.len(), 5);
        rest.advance(2);
        assert_eq!(
            (rest.piece(0..3).as_slice(), rest.pieces()),
            (&b"hij"[..], 1)
        );
        rest.advance(9);
        assert!(rest.is_empty());
    }

    proptest::proptest! {
        /// Fields read across any cuts are the fields of the joined bytes.
        #[test]
        fn fields_across_cuts_are_the_fields_of_the_whole(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(vec![0x08u8, 0x09, 0x0a, 0x0d, 0x12, 0x80, 0xff, 0x01, 0x00]),
                ],
                0..80,
            ),
            cuts in proptest::collection::vec(0usize..80, 0..6),
            start in 0usize..8,
        ) {
            let message = cut(&bytes, &cuts);
            let start = start.min(bytes.len());
            let expected: Vec<_> = Fields::new(&bytes[start..]).collect();
            let got: Vec<_> = message.fields(start..bytes.len()).collect();
            proptest::prop_assert_eq!(expected.len(), got.len());
            for (e, g) in expected.into_iter().zip(got) {
                match (e, g) {
                    (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
                    (Ok(e), Ok(g)) => {
                        proptest::prop_assert_eq!(e.number, g.number);
                        match (e.value, g.value) {
                            (WireValue::Bytes(a), ChunkValue::Bytes(at)) => {
                                let piece = message.piece_at(at);
                                proptest::prop_assert_eq!(a, piece.as_slice());
                            }
                            (WireValue::Varint(a), ChunkValue::Varint(b)) => proptest::prop_assert_eq!(a, b),
                            (WireValue::Fixed64(a), ChunkValue::Fixed64(b)) => proptest::prop_assert_eq!(a, b),
                            (WireValue::Fixed32(a), ChunkValue::Fixed32(b)) => proptest::prop_assert_eq!(a, b),
                            (a, b) => proptest::prop_assert!(false, "{a:?} vs {b:?}"),
                        }
                    }
                    (a, b) => proptest::prop_assert!(false, "{a:?} vs {b:?}"),
                }
            }
        }
    }
}
