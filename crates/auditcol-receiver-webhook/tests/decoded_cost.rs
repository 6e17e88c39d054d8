//! What decoding a webhook body costs in memory at its peak, counted by a
//! test allocator: the most bytes held at once (beyond the body itself)
//! while `decode_request` reads the events and `batch_of` makes their
//! batch, for bodies shaped to cost the most per byte — many tiny events,
//! payloads of tiny numbers, arrays and objects. `DECODE_COST_PER_BYTE`
//! (what the receiver reserves with the memory limiters per body byte,
//! before decoding) must never be less.
//!
//! `cargo test -p auditcol-receiver-webhook --test decoded_cost -- --nocapture`
//! prints the figure of each shape.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use auditcol_receiver_webhook::Format;
use auditcol_receiver_webhook::decode_cost;
use auditcol_receiver_webhook::fuzzing::{BodyKind, batch_of, decode_request};

/// Counts the bytes held by allocations made on the current thread, and the
/// most held at once.
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = HELD.try_with(|h| {
        let now = h.get() + delta;
        h.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak bytes held beyond what was held before, while `body` is decoded
/// into events and their batch (both kept until the end, as the receiver
/// keeps them until the pipeline answered).
fn peak_cost(format: Format, kind: BodyKind, body: &[u8]) -> usize {
    let before = HELD.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let decoded = decode_request(format, kind, body).expect("a valid body");
    assert!(!decoded.events.is_empty());
    let batch = batch_of("flipt", &decoded.events, 1).expect("valid events");
    let peak = PEAK.with(Cell::get) - before;
    drop((decoded, batch));
    usize::try_from(peak).unwrap()
}

/// About `size` bytes of JSON: `make(i)` repeated, joined as a JSON array.
fn array_of(size: usize, make: impl Fn(usize) -> String) -> Vec<u8> {
    let mut body = String::from("[");
    let mut i = 0;
    while body.len() < size {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&make(i));
        i += 1;
    }
    body.push(']');
    body.into_bytes()
}

/// One Flipt event whose payload is `payload` (JSON text) grown to about `size` bytes.
fn one_event_with(size: usize, open: &str, item: &str, close: &str) -> Vec<u8> {
    let mut payload = String::from(open);
    let mut i = 0;
    while payload.len() < size {
        if i > 0 {
            payload.push(',');
        }
        payload.push_str(&item.replace("{i}", &i.to_string()));
        i += 1;
    }
    payload.push_str(close);
    format!(r#"{{"version":"0.2","type":"flag","action":"created","timestamp":"2024-05-01T10:00:00Z","payload":{payload}}}"#)
        .into_bytes()
}

#[test]
fn decoding_never_costs_more_than_the_receiver_reserves() {
    const SIZE: usize = 256 << 10;
    let shapes: Vec<(&str, Format, Vec<u8>)> = vec![
        (
            "tiny Flipt events",
            Format::Audit,
            array_of(SIZE, |_| {
                r#"{"version":"0.2","type":"a","action":"b","timestamp":"2024-05-01T10:00:00Z"}"#
                    .to_owned()
            }),
        ),
        (
            "payload of tiny numbers",
            Format::Audit,
            one_event_with(SIZE, "[", "1", "]"),
        ),
        (
            "payload of empty arrays",
            Format::Audit,
            one_event_with(SIZE, "[", "[]", "]"),
        ),
        (
            "payload of empty objects",
            Format::Audit,
            one_event_with(SIZE, "[", "{}", "]"),
        ),
        (
            "payload object of short keys",
            Format::Audit,
            one_event_with(SIZE, "{", r#""{i}":1"#, "}"),
        ),
        (
            "payload of one-letter strings",
            Format::Audit,
            one_event_with(SIZE, "[", r#""x""#, "]"),
        ),
        (
            "tiny Flagsmith entries",
            Format::Flagsmith,
            array_of(SIZE, |_| {
                r#"{"log":"New Flag / Remote Config created: x","created_date":"2020-02-23T17:30:57Z","related_object_type":"FEATURE"}"#
                    .to_owned()
            }),
        ),
    ];
    for (name, format, body) in shapes {
        let cost = peak_cost(format, BodyKind::Json, &body);
        let per_byte = cost as f64 / body.len() as f64;
        println!(
            "{name}: {} bytes of body, peak {cost} bytes: {per_byte:.1} per byte",
            body.len()
        );
        assert!(
            cost <= decode_cost(body.len()),
            "{name}: decoding {} bytes held {cost} at its peak, more than the {} reserved",
            body.len(),
            decode_cost(body.len())
        );
    }
}
