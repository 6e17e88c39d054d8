//! What a decoded record costs in memory, counted by a test allocator: the
//! bytes allocated and still held after `decode_protobuf` and
//! `prepare_ingest` of a request of tiny audit records, beyond the
//! request's own bytes. `LogBatch::decode_cost` (what receivers reserve
//! before decoding) must never be less.
//!
//! `cargo test -p auditcol-core --test decoded_cost -- --nocapture` prints
//! the figure per record.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use auditcol_core::LogBatch;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

/// Counts the bytes held by allocations made on the current thread (tests
/// run on threads of their own, so others do not disturb the count).
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
}

fn held() -> isize {
    HELD.with(Cell::get)
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = HELD.try_with(|h| h.set(h.get() + layout.size() as isize));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = HELD.try_with(|h| h.set(h.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = HELD.try_with(|h| h.set(h.get() + new_size as isize - layout.size() as isize));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A request of `n` tiny audit records: a time, `audit.type`, `audit.action`.
fn tiny_records(n: usize) -> Vec<u8> {
    let record = LogRecord {
        time_unix_nano: 1_714_557_600_000_000_000,
        attributes: vec![text("audit.type", "flag"), text("audit.action", "created")],
        ..Default::default()
    };
    prost::Message::encode_to_vec(&ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record; n],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

#[test]
fn a_decoded_tiny_record_costs_no_more_than_decode_cost_reserves() {
    let n = 100_000;
    let request = bytes::Bytes::from(tiny_records(n));
    let estimate = LogBatch::decode_cost(&request.clone().into());
    let before = held();
    let mut batch = LogBatch::decode_protobuf(request.clone())
        .unwrap()
        .all_or_nothing()
        .unwrap();
    let decoded = held() - before;
    batch.prepare_ingest(1, "otlp");
    let ingested = held() - before;
    assert_eq!(batch.len(), n);
    println!(
        "{n} tiny records, {} bytes each on the wire: {:.1} bytes per record decoded, {:.1} after ingest; decode_cost reserves {:.1}",
        request.len() / n,
        decoded as f64 / n as f64,
        ingested as f64 / n as f64,
        estimate as f64 / n as f64,
    );
    assert!(ingested as usize <= estimate, "{ingested} > {estimate}");
}
