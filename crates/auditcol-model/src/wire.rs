//! A borrowing reader (and a few writers) for the protobuf wire format.
//!
//! auditcol keeps OTLP records as the bytes they arrived in and reads them
//! in place: no message is decoded into owned structs on the hot path. This
//! module is the one place that knows how protobuf lays out fields; the
//! typed views over OTLP messages ([`crate::view`]) are built on it.
//!
//! ```
//! use auditcol_model::wire::{Fields, WireValue};
//! // field 1, varint 150; field 2, length-delimited "hi"
//! let bytes = [0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i'];
//! let fields: Vec<_> = Fields::new(&bytes).collect::<Result<_, _>>().unwrap();
//! assert_eq!(fields[0].number, 1);
//! assert_eq!(fields[0].value, WireValue::Varint(150));
//! assert_eq!(fields[1].value, WireValue::Bytes(b"hi"));
//! ```

/// The payload of one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WireValue<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, embedded messages, packed repeated fields.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field<'a> {
    /// The field number.
    pub number: u32,
    /// Its payload.
    pub value: WireValue<'a>,
}

/// Why bytes are not a well-formed protobuf message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message ends inside a field.
    #[error("truncated message")]
    Truncated,
    /// A varint longer than 10 bytes, or with bits beyond the 64th.
    #[error("invalid varint")]
    InvalidVarint,
    /// Field number 0, or one above 2^29 - 1.
    #[error("invalid field number")]
    InvalidFieldNumber,
    /// Groups (wire types 3 and 4, deprecated) and the undefined types 6 and 7.
    #[error("unsupported wire type {0}")]
    UnsupportedWireType(u8),
}

/// Iterates over the fields of one message, in the order they appear.
///
/// Yields an error once and then stops when the bytes are malformed.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    /// The fields of the message encoded in `buf`.
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            failed: false,
        }
    }

    /// Where the next field starts.
    pub fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        if let Some((value, next)) = short_varint(self.buf, self.pos) {
            self.pos = next;
            return Ok(value as u64);
        }
        let (value, len) = read_varint(&self.buf[self.pos.min(self.buf.len())..])?;
        self.pos += len;
        Ok(value)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() - self.pos {
            return Err(WireError::Truncated);
        }
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    #[inline(always)]
    fn next_field(&mut self) -> Result<Field<'a>, WireError> {
        // The payload's fit is checked by `take`.
        let head = self.head::<false>(0)?;
        let value = match head.value {
            HeadValue::Varint(v) => WireValue::Varint(v),
            HeadValue::Fixed64(v) => WireValue::Fixed64(v),
            HeadValue::Len(n) => WireValue::Bytes(self.take(n)?),
            HeadValue::Fixed32(v) => WireValue::Fixed32(v),
        };
        Ok(Field {
            number: head.number,
            value,
        })
    }

    /// Reads the head of the field at the position. With `FITS`, in a
    /// message with `remaining` bytes from there (`buf` may hold fewer: see
    /// [`read_head`]), a length-delimited payload must fit in them.
    #[inline(always)]
    fn head<const FITS: bool>(&mut self, remaining: usize) -> Result<FieldHead, WireError> {
        let start = self.pos;
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(MAX_FIELD_NUMBER) {
            return Err(WireError::InvalidFieldNumber);
        }
        let value = match key & 7 {
            0 => HeadValue::Varint(self.varint()?),
            1 => HeadValue::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                if FITS && len > remaining - (self.pos - start) {
                    return Err(WireError::Truncated);
                }
                HeadValue::Len(len)
            }
            5 => HeadValue::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            other => return Err(WireError::UnsupportedWireType(other as u8)),
        };
        Ok(FieldHead {
            number: number as u32,
            value,
            len: self.pos - start,
        })
    }
}

/// The most bytes a field's head takes: a key and then a length, a varint
/// value or a fixed64, none longer than 10 bytes.
pub const MAX_HEAD_LEN: usize = 20;

/// What a field's head says: its value, or how long its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadValue {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: the payload's length; it follows the head.
    Len(usize),
    /// Wire type 5.
    Fixed32(u32),
}

/// The head of a field: its number, its value or payload length, and how
/// many bytes the head takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldHead {
    /// The field number.
    pub number: u32,
    /// The value, or where the payload is.
    pub value: HeadValue,
    /// Bytes of the head: the key, and the value or the length.
    pub len: usize,
}

/// Reads the head of the field that starts a message's last `remaining`
/// bytes, of which `buf` holds at least the first
/// `min(remaining, MAX_HEAD_LEN)`: for a message that is not in one buffer
/// (the frames of a request), read from a few bytes copied across the cut.
///
/// It accepts and refuses exactly what [`Fields`] does at that position,
/// with the same error; a length-delimited payload must fit in `remaining`.
#[inline(always)]
pub fn read_head(buf: &[u8], remaining: usize) -> Result<FieldHead, WireError> {
    if let Some((number, len, head)) = short_len_head(buf)
        && head + len <= remaining
    {
        return Ok(FieldHead {
            number,
            value: HeadValue::Len(len),
            len: head,
        });
    }
    read_head_slow(buf, remaining)
}

/// The head at the start of `buf` when it has the shape of nearly every
/// field of a request's containers — a one-byte key of a length-delimited
/// field, and a one- or two-byte length: its number, the payload's length
/// and the head's. `None` for [`read_head`] to read or refuse. The payload
/// is not checked to fit.
#[inline(always)]
pub fn short_len_head(buf: &[u8]) -> Option<(u32, usize, usize)> {
    let &key = buf.first()?;
    if !(8..0x80).contains(&key) || key & 7 != 2 {
        return None;
    }
    let (len, head) = short_varint(buf, 1)?;
    Some((u32::from(key >> 3), len, head))
}

#[inline(never)]
fn read_head_slow(buf: &[u8], remaining: usize) -> Result<FieldHead, WireError> {
    let buf = &buf[..buf.len().min(remaining)];
    debug_assert!(buf.len() >= remaining.min(MAX_HEAD_LEN));
    Fields::new(buf).head::<true>(remaining)
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let field = self.next_field();
        self.failed = field.is_err();
        Some(field)
    }
}

/// The fields of a message already checked to be well formed; stops quietly
/// at the first malformed byte otherwise.
#[inline]
pub fn fields(buf: &[u8]) -> CheckedFields<'_> {
    CheckedFields(Fields::new(buf))
}

/// See [`fields`].
#[derive(Debug, Clone)]
pub struct CheckedFields<'a>(Fields<'a>);

impl<'a> Iterator for CheckedFields<'a> {
    type Item = Field<'a>;

    #[inline]
    fn next(&mut self) -> Option<Field<'a>> {
        // The reading path of every view: no `Result`, one-byte tags and
        // one- or two-byte lengths (nearly all of them) without a call.
        let f = &mut self.0;
        if f.failed {
            return None;
        }
        let &key = f.buf.get(f.pos)?;
        if (8..0x80).contains(&key) {
            let number = u32::from(key >> 3);
            match key & 7 {
                2 => {
                    if let Some((len, start)) = short_varint(f.buf, f.pos + 1) {
                        let bytes = f.buf.get(start..start + len)?;
                        f.pos = start + len;
                        return Some(Field {
                            number,
                            value: WireValue::Bytes(bytes),
                        });
                    }
                }
                1 => {
                    let start = f.pos + 1;
                    let bytes = f.buf.get(start..start + 8)?;
                    f.pos = start + 8;
                    return Some(Field {
                        number,
                        value: WireValue::Fixed64(u64::from_le_bytes(
                            bytes.try_into().expect("8 bytes"),
                        )),
                    });
                }
                _ => {}
            }
        }
        let field = f.next_field();
        f.failed = field.is_err();
        field.ok()
    }
}

/// The varint at `pos` when it has one or two bytes — tags and nearly every
/// length (a record, a payload) — and where the next byte is; `None` for
/// the general reader ([`read_varint`]) to read or refuse.
#[inline(always)]
fn short_varint(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let &low = buf.get(pos)?;
    if low < 0x80 {
        return Some((usize::from(low), pos + 1));
    }
    let &high = buf.get(pos + 1)?;
    (high < 0x80).then(|| (usize::from(low & 0x7f) | usize::from(high) << 7, pos + 2))
}

/// Reads the length-delimited field at `pos` when its key is the one-byte
/// `key` and its length fits one byte — the layout of nearly every small
/// OTLP message (`KeyValue`, `AnyValue`) — returning its payload and where
/// the next field starts. `None` means "not that shape": parse generically.
#[inline(always)]
pub fn short_bytes_field(buf: &[u8], pos: usize, key: u8) -> Option<(&[u8], usize)> {
    if *buf.get(pos)? != key {
        return None;
    }
    let len = *buf.get(pos + 1)?;
    if len >= 0x80 {
        return None;
    }
    let end = pos + 2 + usize::from(len);
    Some((buf.get(pos + 2..end)?, end))
}

/// The largest field number protobuf allows.
pub const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// Reads a varint; returns it and its length in bytes.
pub fn read_varint(buf: &[u8]) -> Result<(u64, usize), WireError> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            // The tenth byte holds bit 63 alone: anything more is beyond 64
            // bits, which protobuf readers refuse (a message let in here is
            // forwarded as it is).
            if i == 9 && byte > 1 {
                return Err(WireError::InvalidVarint);
            }
            return Ok((value, i + 1));
        }
    }
    if buf.len() < 10 {
        Err(WireError::Truncated)
    } else {
        Err(WireError::InvalidVarint)
    }
}

impl<'a> WireValue<'a> {
    /// The bytes of a length-delimited field.
    #[inline]
    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The value of a varint field.
    #[inline]
    pub fn varint(self) -> Option<u64> {
        match self {
            Self::Varint(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a 64-bit fixed field.
    #[inline]
    pub fn fixed64(self) -> Option<u64> {
        match self {
            Self::Fixed64(v) => Some(v),
            _ => None,
        }
    }

    /// The value of a 32-bit fixed field.
    #[inline]
    pub fn fixed32(self) -> Option<u32> {
        match self {
            Self::Fixed32(v) => Some(v),
            _ => None,
        }
    }

    /// The protobuf wire type number.
    #[inline]
    pub fn wire_type(self) -> u8 {
        match self {
            Self::Varint(_) => 0,
            Self::Fixed64(_) => 1,
            Self::Bytes(_) => 2,
            Self::Fixed32(_) => 5,
        }
    }
}

/// Appends a varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The length in bytes of `value` as a varint.
#[inline]
pub fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the key of field `number` with wire type `wire_type`.
#[inline]
pub fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

/// Appends a length-delimited field.
#[inline]
pub fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_key(out, number, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The encoded size of a length-delimited field of `len` payload bytes.
#[inline]
pub fn bytes_field_len(number: u32, len: usize) -> usize {
    varint_len(u64::from(number) << 3) + varint_len(len as u64) + len
}

/// Appends a 64-bit fixed field.
#[inline]
pub fn put_fixed64(out: &mut Vec<u8>, number: u32, value: u64) {
    put_key(out, number, 1);
    out.extend_from_slice(&value.to_le_bytes());
}

/// Appends a 32-bit fixed field.
pub fn put_fixed32(out: &mut Vec<u8>, number: u32, value: u32) {
    put_key(out, number, 5);
    out.extend_from_slice(&value.to_le_bytes());
}

/// Starts a length-delimited field whose length is not known yet (an
/// embedded message being written): appends the key and a one-byte length
/// placeholder and returns where the payload starts. Append the payload,
/// then call [`end_bytes`].
pub fn begin_bytes(out: &mut Vec<u8>, number: u32) -> usize {
    put_key(out, number, 2);
    out.push(0);
    out.len()
}

/// Ends the field started by [`begin_bytes`] at `start`: writes the length
/// of everything appended since, moving the payload right when the length
/// needs more than the one byte reserved (payloads of 128 bytes or more).
/// The result is the canonical encoding, as prost writes it. `start` must
/// be what `begin_bytes` returned, with nothing removed before it since.
pub fn end_bytes(out: &mut Vec<u8>, start: usize) {
    let len = (out.len() - start) as u64;
    let extra = varint_len(len) - 1;
    if extra > 0 {
        let end = out.len();
        out.resize(end + extra, 0);
        out.copy_within(start..end, start + extra);
    }
    let mut at = start - 1;
    let mut value = len;
    while value >= 0x80 {
        out[at] = (value as u8) | 0x80;
        value >>= 7;
        at += 1;
    }
    out[at] = value as u8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn varints_round_trip_and_their_length_is_known() {
        for value in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            assert_eq!(read_varint(&out), Ok((value, out.len())));
        }
    }

    #[test]
    fn fields_read_varints_of_every_length() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let payload = value.min(20_000) as usize;
            let mut out = Vec::new();
            put_key(&mut out, 2, 0);
            put_varint(&mut out, value);
            put_bytes(&mut out, 3, &vec![b'x'; payload]);
            let all: Vec<_> = Fields::new(&out).collect();
            let expected_bytes = vec![b'x'; payload];
            // The reading path agrees, with one-, two- and three-byte lengths.
            assert_eq!(
                fields(&out).map(Ok).collect::<Vec<Result<_, WireError>>>(),
                all,
                "{value}"
            );
            assert_eq!(
                all,
                vec![
                    Ok(Field {
                        number: 2,
                        value: WireValue::Varint(value)
                    }),
                    Ok(Field {
                        number: 3,
                        value: WireValue::Bytes(&expected_bytes)
                    }),
                ],
                "{value}"
            );
        }
        // A two-byte varint cut after its first byte.
        assert_eq!(
            Fields::new(&[0x10, 0x80]).collect::<Vec<_>>(),
            vec![Err(WireError::Truncated)]
        );
    }

    #[test]
    fn a_message_written_before_its_length_is_framed_like_put_bytes() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut expected = vec![7];
            put_bytes(&mut expected, 6, &payload);
            let mut out = vec![7];
            let start = begin_bytes(&mut out, 6);
            out.extend_from_slice(&payload);
            end_bytes(&mut out, start);
            assert_eq!(out, expected, "{len}");
        }
        let mut out = Vec::new();
        put_fixed32(&mut out, 8, 3);
        assert_eq!(out, [0x45, 3, 0, 0, 0]);
    }

    /// Found by the `otlp_protobuf` fuzz target: an unknown field (19) of a
    /// record held a 10-byte varint whose last byte set bits beyond the
    /// 64th. It was read (the extra bits dropped) and the record forwarded;
    /// prost, like any protobuf reader, refuses the whole request for it.
    #[test]
    fn a_varint_beyond_64_bits_is_invalid() {
        let found = [
            0x98, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa0, 0x0c,
        ];
        let all: Vec<_> = Fields::new(&found).collect();
        assert_eq!(all, vec![Err(WireError::InvalidVarint)]);
        let mut max = [0xff; 10];
        max[9] = 0x01;
        assert_eq!(read_varint(&max), Ok((u64::MAX, 10)));
        max[9] = 0x02;
        assert_eq!(read_varint(&max), Err(WireError::InvalidVarint));
    }

    proptest::proptest! {
        /// The head reader, given only the head's bytes, agrees with
        /// `Fields` over the whole message: same field, same error.
        #[test]
        fn heads_read_from_a_window_agree_with_fields(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(vec![0x08u8, 0x09, 0x0a, 0x0d, 0x12, 0x80, 0xff, 0x01, 0x00]),
                ],
                0..64,
            ),
        ) {
            let mut pos = 0;
            let mut fields = Fields::new(&bytes);
            while pos < bytes.len() {
                let remaining = bytes.len() - pos;
                let window = &bytes[pos..pos + remaining.min(MAX_HEAD_LEN)];
                let head = read_head(window, remaining);
                let field = fields.next().expect("a field or an error");
                match (head, field) {
                    (Err(a), Err(b)) => {
                        proptest::prop_assert_eq!(a, b);
                        break;
                    }
                    (Ok(head), Ok(field)) => {
                        proptest::prop_assert_eq!(head.number, field.number);
                        let payload = match (head.value, field.value) {
                            (HeadValue::Varint(a), WireValue::Varint(b)) => { proptest::prop_assert_eq!(a, b); 0 }
                            (HeadValue::Fixed64(a), WireValue::Fixed64(b)) => { proptest::prop_assert_eq!(a, b); 0 }
                            (HeadValue::Fixed32(a), WireValue::Fixed32(b)) => { proptest::prop_assert_eq!(a, b); 0 }
                            (HeadValue::Len(n), WireValue::Bytes(b)) => {
                                proptest::prop_assert_eq!(&bytes[pos + head.len..pos + head.len + n], b);
                                n
                            }
                            (a, b) => return Err(proptest::test_runner::TestCaseError::fail(format!("{a:?} vs {b:?}"))),
                        };
                        pos += head.len + payload;
                        proptest::prop_assert_eq!(pos, fields.position());
                    }
                    (a, b) => return Err(proptest::test_runner::TestCaseError::fail(format!("{a:?} vs {b:?}"))),
                }
            }
        }
    }

    #[test]
    fn malformed_messages_are_reported_once() {
        for (bytes, error) in [
            (&[0x08][..], WireError::Truncated),
            (&[0x12, 0x05, b'a'][..], WireError::Truncated),
            (&[0x00, 0x01][..], WireError::InvalidFieldNumber),
            (&[0x0b][..], WireError::UnsupportedWireType(3)),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ][..],
                WireError::InvalidVarint,
            ),
        ] {
            let all: Vec<_> = Fields::new(bytes).collect();
            assert_eq!(all, vec![Err(error)], "{bytes:?}");
        }
    }

    #[test]
    fn fields_match_what_prost_encodes() {
        let record = opentelemetry_proto::tonic::logs::v1::LogRecord {
            time_unix_nano: 7,
            severity_number: 9,
            event_name: "e".into(),
            flags: 3,
            ..Default::default()
        };
        let bytes = record.encode_to_vec();
        let seen: Vec<_> = fields(&bytes).map(|f| (f.number, f.value)).collect();
        assert_eq!(
            seen,
            vec![
                (1, WireValue::Fixed64(7)),
                (2, WireValue::Varint(9)),
                (8, WireValue::Fixed32(3)),
                (12, WireValue::Bytes(b"e")),
            ]
        );
        let mut out = Vec::new();
        put_fixed64(&mut out, 1, 7);
        assert_eq!(&bytes[..out.len()], &out[..]);
    }
}
