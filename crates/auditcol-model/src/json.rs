//! Writes the Flipt v0.2 JSON of an audit log record straight from the OTLP
//! record, without building an [`AuditEvent`](crate::AuditEvent) first.
//!
//! This is the exporters' hot path: building the event allocates a string per
//! field and a map per payload object, which cost more than the rest of the
//! pipeline together. The output is byte-for-byte what
//! `serde_json::to_string(&AuditEvent::from_log_record(record)?)` gives; a
//! property test holds the two together.

use smallvec::SmallVec;

use crate::anyvalue::{view_to_json, view_to_string};
use crate::audit::AuditAttributes;
use crate::conventions::{AUDIT_ACTOR_PREFIX, DEFAULT_VERSION, STATUS_SUCCESS};
use crate::timestamp::write_rfc3339_bytes;
use crate::view::{AnyValueView, KeyValueView, RecordView, log_record};
use crate::wire::WireValue;

/// The known actor fields, in output order; others follow sorted by name.
const KNOWN_ACTOR_FIELDS: [&str; 5] = ["authentication", "ip", "email", "name", "picture"];

/// What the writers of an audit event need of a record, read in one pass
/// over its fields.
pub struct AuditFields<'a> {
    /// The audit attributes.
    pub audit: AuditAttributes<'a>,
    /// (rank, name, value) of the actor fields (`audit.actor.<name>`).
    actor: SmallVec<[(usize, &'a str, AnyValueView<'a>); 8]>,
    /// The body, the event's payload.
    pub body: AnyValueView<'a>,
    /// `time_unix_nano`, or the observed time when that is 0 (unknown).
    pub time: u64,
}

impl<'a> AuditFields<'a> {
    /// Reads `record`.
    pub fn read(record: &RecordView<'a>) -> Self {
        let mut g = Self {
            audit: AuditAttributes::default(),
            actor: SmallVec::new(),
            body: AnyValueView::Empty,
            time: 0,
        };
        let mut observed = 0;
        for field in record.fields() {
            match (field.number, field.value) {
                (log_record::TIME_UNIX_NANO, WireValue::Fixed64(v)) => g.time = v,
                (log_record::OBSERVED_TIME_UNIX_NANO, WireValue::Fixed64(v)) => observed = v,
                (log_record::BODY, WireValue::Bytes(b)) => g.body = AnyValueView::parse(b),
                (log_record::ATTRIBUTES, WireValue::Bytes(b)) => {
                    let kv = KeyValueView::parse(b);
                    if let Some(name) = kv.key.strip_prefix(AUDIT_ACTOR_PREFIX) {
                        g.actor.push((actor_rank(name), name, kv.value));
                    } else {
                        g.audit.add(kv.key, kv.value.attr());
                    }
                }
                _ => {}
            }
        }
        if g.time == 0 {
            g.time = observed;
        }
        g.sort_actor();
        g
    }

    /// The fields of an audit event whose parts were located already (by
    /// the check at decode): `actor` are its `audit.actor.*` attributes in
    /// record order, `time` the event time (the observed time when the
    /// record has none).
    #[inline(always)]
    pub fn from_parts(
        audit: AuditAttributes<'a>,
        actor: impl IntoIterator<Item = KeyValueView<'a>>,
        body: AnyValueView<'a>,
        time: u64,
    ) -> Self {
        let mut g = Self {
            audit,
            actor: SmallVec::new(),
            body,
            time,
        };
        g.set_actor(actor);
        g
    }

    /// Writes the Flipt JSON of the event in these parts (see
    /// [`Self::from_parts`] and [`write_audit_fields_json`]). The fields
    /// are built on this function's stack and never moved: they are a few
    /// hundred bytes, which returning them by value copied per record.
    #[inline(always)]
    pub fn write_json_from_parts(
        audit: AuditAttributes<'a>,
        actor: impl IntoIterator<Item = KeyValueView<'a>>,
        body: AnyValueView<'a>,
        time: u64,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut g = Self {
            audit,
            actor: SmallVec::new(),
            body,
            time,
        };
        g.set_actor(actor);
        write_audit_fields_json(&g, out)
    }

    /// Takes the `audit.actor.*` attributes among `actor`, in output order.
    #[inline(always)]
    fn set_actor(&mut self, actor: impl IntoIterator<Item = KeyValueView<'a>>) {
        for kv in actor {
            if let Some(name) = kv.key.strip_prefix(AUDIT_ACTOR_PREFIX) {
                self.actor.push((actor_rank(name), name, kv.value));
            }
        }
        self.sort_actor();
    }

    fn sort_actor(&mut self) {
        // Known fields by rank, others by name; the last occurrence of a name
        // wins, as in `Actor::set`. The sort is stable, so reversing first
        // puts the last occurrence of each name first among its equals.
        if let [a, b] = &mut self.actor[..] {
            // Two (the usual): one comparison.
            if a.1 == b.1 {
                self.actor.remove(0);
            } else if (b.0, b.1) < (a.0, a.1) {
                std::mem::swap(a, b);
            }
        } else if self.actor.len() > 2 {
            self.actor.reverse();
            self.actor.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            self.actor.dedup_by(|later, kept| later.1 == kept.1);
        }
    }

    /// The actor fields in output order: the known fields first, then the
    /// others by name; one per name, the last given.
    pub fn actor(&self) -> impl ExactSizeIterator<Item = (&'a str, AnyValueView<'a>)> + '_ {
        self.actor.iter().map(|(_, name, value)| (*name, *value))
    }
}

/// Where a known actor field goes in the output; others come after.
fn actor_rank(name: &str) -> usize {
    KNOWN_ACTOR_FIELDS
        .iter()
        .position(|k| *k == name)
        .unwrap_or(KNOWN_ACTOR_FIELDS.len())
}

/// Appends the Flipt JSON of `record` (no newline) to `out`. Returns false,
/// writing nothing, when the record is not an audit event.
pub fn write_audit_event_json(record: &RecordView<'_>, out: &mut Vec<u8>) -> bool {
    write_audit_fields_json(&AuditFields::read(record), out)
}

/// Appends the Flipt JSON of an audit event read already (no newline) to
/// `out`. Returns false, writing nothing, when it has no noun and verb.
pub fn write_audit_fields_json(g: &AuditFields<'_>, out: &mut Vec<u8>) -> bool {
    let Some((noun, verb)) = g.audit.noun_verb() else {
        return false;
    };
    out.extend_from_slice(b"{\"version\":");
    write_str(out, g.audit.version.unwrap_or(DEFAULT_VERSION));
    out.extend_from_slice(b",\"type\":");
    write_str(out, noun);
    out.extend_from_slice(b",\"action\":");
    write_str(out, verb);
    out.extend_from_slice(b",\"metadata\":{\"actor\":{");
    write_actor(g, out);
    out.extend_from_slice(b"}},\"payload\":");
    write_value(g.body, out);
    out.extend_from_slice(b",\"timestamp\":\"");
    write_rfc3339_bytes(out, g.time);
    out.extend_from_slice(b"\",\"status\":");
    write_str(out, g.audit.status.unwrap_or(STATUS_SUCCESS));
    out.push(b'}');
    true
}

fn write_actor(fields: &AuditFields<'_>, out: &mut Vec<u8>) {
    for (n, (name, value)) in fields.actor().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        match value {
            AnyValueView::String(s) => write_str(out, s),
            other => write_str(out, &view_to_string(other)),
        }
    }
}

/// Appends the JSON of an `AnyValue`, as [`view_to_json`] would write it.
pub fn write_value(value: AnyValueView<'_>, out: &mut Vec<u8>) {
    match value {
        AnyValueView::Empty => out.extend_from_slice(b"null"),
        AnyValueView::String(s) => write_str(out, s),
        AnyValueView::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        AnyValueView::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        AnyValueView::Double(d) => {
            let _ = serde_json::to_writer(&mut *out, &d);
        }
        AnyValueView::Array(a) => {
            out.push(b'[');
            for (n, item) in a.values().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        AnyValueView::Kvlist(kv) => {
            let start = out.len();
            let mut keys: SmallVec<[&str; 16]> = SmallVec::new();
            out.push(b'{');
            for (n, item) in kv.values().enumerate() {
                if keys.contains(&item.key) {
                    // A JSON object keeps one value per key (the last, at the
                    // first key's place): rare enough to take the general path.
                    out.truncate(start);
                    let _ = serde_json::to_writer(&mut *out, &view_to_json(value));
                    return;
                }
                keys.push(item.key);
                if n > 0 {
                    out.push(b',');
                }
                write_str(out, item.key);
                out.push(b':');
                write_value(item.value, out);
            }
            out.push(b'}');
        }
        AnyValueView::Bytes(_) => {
            let _ = serde_json::to_writer(&mut *out, &view_to_json(value));
        }
    }
}

/// Appends `s` as a JSON string, escaped byte for byte as serde_json does:
/// `"` and `\\` and the control characters below U+0020 (`\b \t \n \f \r`
/// short, the rest as `\u00XX`); everything else, U+007F and non-ASCII
/// included, as it is. Most strings need no escape and are copied whole.
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if has_escape(bytes) {
        write_escaped(out, bytes);
    } else {
        push_quoted(out, bytes);
    }
}

fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte of `bytes` needs an escape, eight bytes at a time.
/// Most strings written are a few bytes long: those are read in one word.
#[inline]
fn has_escape(bytes: &[u8]) -> bool {
    let n = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            bytes[at..at + 4].try_into().expect("4 bytes"),
        ))
    };
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            if escapes(word(at)) {
                return true;
            }
            at += 8;
        }
        // The tail, read as the last eight bytes.
        return at < n && escapes(word(n - 8));
    }
    let w = if n >= 4 {
        half(0) | half(n - 4) << 32
    } else if n > 0 {
        // Up to three bytes; the rest spaces, which need no escape.
        u64::from(bytes[0])
            | u64::from(bytes[n / 2]) << 8
            | u64::from(bytes[n - 1]) << 16
            | 0x2020_2020_2000_0000
    } else {
        return false;
    };
    escapes(w)
}

/// Whether a byte of `w` is below 0x20, `"` or `\\` (the "has less than"
/// and "has zero byte" bit tricks: a borrow sets a bit only above a byte
/// that matched, so there are no false positives).
#[inline(always)]
fn escapes(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * u64::from(b'\\'));
    let slash = s.wrapping_sub(ONES) & !s;
    (control | quote | slash) & HIGH != 0
}

/// Appends `"`, `bytes`, `"`. Short copies are done with a few word
/// moves instead of a call to `memcpy`, which costs more than the copy for
/// the short strings of audit events.
#[inline(always)]
fn push_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    use std::ptr::{read_unaligned, write_unaligned};
    let n = bytes.len();
    out.reserve(n + 2);
    let len = out.len();
    let src = bytes.as_ptr();
    // SAFETY: `reserve` made room for n + 2 bytes after `len`. Every one of
    // them is written below before `set_len` makes them part of the vector:
    // the quote at `len`, the n bytes of `bytes` after it (by two
    // overlapping moves for the short sizes, which both stay inside `src`'s
    // n bytes and the n bytes of room), and the closing quote.
    unsafe {
        let dst = out.as_mut_ptr().add(len);
        dst.write(b'"');
        let to = dst.add(1);
        if n >= 16 {
            std::ptr::copy_nonoverlapping(src, to, n);
        } else if n >= 8 {
            let (a, b) = (
                read_unaligned(src.cast::<u64>()),
                read_unaligned(src.add(n - 8).cast::<u64>()),
            );
            write_unaligned(to.cast::<u64>(), a);
            write_unaligned(to.add(n - 8).cast::<u64>(), b);
        } else if n >= 4 {
            let (a, b) = (
                read_unaligned(src.cast::<u32>()),
                read_unaligned(src.add(n - 4).cast::<u32>()),
            );
            write_unaligned(to.cast::<u32>(), a);
            write_unaligned(to.add(n - 4).cast::<u32>(), b);
        } else if n > 0 {
            to.write(*src);
            to.add(n / 2).write(*src.add(n / 2));
            to.add(n - 1).write(*src.add(n - 1));
        }
        to.add(n).write(b'"');
        out.set_len(len + n + 2);
    }
}

/// The bytes a JSON string cannot hold as they are.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditEvent;
    use crate::conventions::{AUDIT_ACTION, AUDIT_STATUS, AUDIT_TYPE, AUDIT_VERSION};
    use crate::mapping::string_kv;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use proptest::prelude::*;

    fn via_event(record: &LogRecord) -> Option<String> {
        AuditEvent::from_log_record(record).map(|e| serde_json::to_string(&e).unwrap())
    }

    fn direct(record: &LogRecord) -> Option<String> {
        let bytes = prost::Message::encode_to_vec(record);
        let mut out = Vec::new();
        write_audit_event_json(&RecordView::new(&bytes, &[]), &mut out)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn non_audit_records_write_nothing() {
        let mut out = Vec::new();
        assert!(!write_audit_event_json(
            &RecordView::new(&[], &[]),
            &mut out
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn odd_records_match_the_event_path() {
        let any = |v| Some(AnyValue { value: Some(v) });
        let kv = |k: &str, v| KeyValue {
            key: k.into(),
            value: any(v),
            key_strindex: 0,
        };
        let record = LogRecord {
            attributes: vec![
                string_kv(AUDIT_TYPE, "flag"),
                string_kv(AUDIT_ACTION, "created"),
                string_kv("audit.actor.zeta", "z"),
                kv("audit.actor.ip", Value::IntValue(7)),
                string_kv("audit.actor.email", "first"),
                string_kv("audit.actor.email", "last \"quoted\"\n"),
                kv(AUDIT_STATUS, Value::BoolValue(false)),
            ],
            observed_time_unix_nano: 1_500_000_000,
            body: any(Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![
                        kv("a", Value::DoubleValue(f64::NAN)),
                        kv("b", Value::BytesValue(b"xy".to_vec())),
                        kv("a", Value::DoubleValue(2.5)),
                    ],
                },
            )),
            ..Default::default()
        };
        assert_eq!(direct(&record), via_event(&record));
    }

    proptest! {
        #[test]
        fn strings_are_escaped_exactly_as_serde_json_does(s in "(.|[\\x00-\\x20\"\\\\\\x7f\u{80}-\u{10ffff}]){0,24}") {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn an_escape_is_found_at_every_position_and_length(
            prefix in "([ -~&&[^\"\\\\]]|[\u{7f}-\u{10ffff}]){0,20}",
            escape in prop::sample::select(vec![0u8, 0x08, 0x0a, 0x1f, b'"', b'\\']),
            suffix in "([ -~&&[^\"\\\\]]|[\u{7f}-\u{10ffff}]){0,20}",
        ) {
            let mut s = prefix.clone();
            prop_assert!(!has_escape(s.as_bytes()));
            s.push(char::from(escape));
            s.push_str(&suffix);
            prop_assert!(has_escape(s.as_bytes()));
            prop_assert!(!has_escape(suffix.as_bytes()));
        }

        #[test]
        fn plain_strings_of_every_length_are_copied_whole(s in "([ -~&&[^\"\\\\]]|[\u{7f}-\u{10ffff}]){0,40}") {
            let mut out = b"x".to_vec();
            write_str(&mut out, &s);
            prop_assert_eq!(&out[..1], b"x");
            prop_assert_eq!(String::from_utf8(out[1..].to_vec()).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn direct_json_equals_the_event_path(
            noun in "[a-z]{1,6}", verb in "[a-z]{1,6}",
            actor in prop::collection::vec(("[a-z]{1,5}|authentication|ip|email|name|picture", ".{0,8}"), 0..6),
            payload in prop::collection::vec(("[a-c]{1,2}", prop_oneof![
                any::<i64>().prop_map(Value::IntValue),
                any::<f64>().prop_map(Value::DoubleValue),
                any::<bool>().prop_map(Value::BoolValue),
                ".{0,10}".prop_map(Value::StringValue),
            ]), 0..6),
            time in any::<u64>(), observed in any::<u64>(),
            version in prop::option::of("0\\.[0-9]"), status in prop::option::of("[a-z]{1,7}"),
        ) {
            let mut attributes = vec![string_kv(AUDIT_TYPE, noun), string_kv(AUDIT_ACTION, verb)];
            if let Some(v) = version { attributes.push(string_kv(AUDIT_VERSION, v)); }
            if let Some(s) = status { attributes.push(string_kv(AUDIT_STATUS, s)); }
            for (k, v) in actor { attributes.push(string_kv(format!("audit.actor.{k}"), v)); }
            let body = AnyValue { value: Some(Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
                values: payload.into_iter().map(|(k, v)| KeyValue { key: k, value: Some(AnyValue { value: Some(v) }), key_strindex: 0 }).collect(),
            })) };
            let record = LogRecord { attributes, body: Some(body), time_unix_nano: time, observed_time_unix_nano: observed, ..Default::default() };
            prop_assert_eq!(direct(&record), via_event(&record));
        }
    }
}
