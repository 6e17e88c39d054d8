//! YAML text → `CollectorConfig::from_yaml` → the service graph built as
//! `auditcol validate` builds it (every component's config parsed and
//! validated, nothing started): an error or a service, never a panic or a
//! hang.
#![no_main]

use auditcol_core::config::CollectorConfig;
use auditcol_core::pipeline::Service;
use libfuzzer_sys::fuzz_target;

/// A fixed environment, so that `${env:…}` references expand the same way
/// on every run.
fn env(name: &str) -> Option<String> {
    match name {
        "HOST" => Some("127.0.0.1".into()),
        "PORT" => Some("4317".into()),
        "SIZE" => Some("42".into()),
        "FLAG" => Some("true".into()),
        "SECRET" => Some("s3cret-s3cret-s3cret-s3cret-s3cr".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match CollectorConfig::from_yaml(text, &env) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    match Service::build(&config, &auditcol::registry()) {
        Ok(service) => {
            let _ = service.warnings();
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
        }
    }
});
