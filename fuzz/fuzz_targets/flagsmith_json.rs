//! A webhook request body in `format: flagsmith` (audit-log entries, bare
//! or in their envelope) → decode → batch → ingest → every exporter
//! encoder; each record must carry the event as mapped.
#![no_main]

use auditcol_fuzz::{WebhookFormat, check_webhook_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check_webhook_body(WebhookFormat::Flagsmith, data));
