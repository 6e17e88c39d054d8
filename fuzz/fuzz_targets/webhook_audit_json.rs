//! A webhook request body in `format: audit` (Flipt v0.2 events: an object,
//! an array, NDJSON) → decode → batch → ingest → every exporter encoder;
//! each record must carry the event as read.
#![no_main]

use auditcol_fuzz::{WebhookFormat, check_webhook_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check_webhook_body(WebhookFormat::Audit, data));
