//! Sends one audit event and says whether it arrived.
//!
//! ```sh
//! cargo run                                             # a collector on its default config
//! cargo run -p auditcol-sdk --example send_event        # gRPC to http://127.0.0.1:4317
//! cargo run -p auditcol-sdk --example send_event -- http://127.0.0.1:4318 http/protobuf
//! ```
//!
//! The collector prints the event as a console line:
//! `... flag:updated success actor: email=kyle@example.com ip=10.0.0.7 payload: {...}`.

use std::process::ExitCode;

use auditcol_sdk::{AuditEvent, AuditSender, Protocol};
use serde_json::json;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next();
    let protocol = match args.next().map(|name| name.parse::<Protocol>()) {
        None => Protocol::Grpc,
        Some(Ok(protocol)) => protocol,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    let mut builder = AuditSender::builder()
        .protocol(protocol)
        .service_name("send-event-example");
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint(endpoint);
    }
    let sender = match builder.build() {
        Ok(sender) => sender,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    let event = AuditEvent::builder("flag", "updated")
        .actor("email", "kyle@example.com")
        .actor("ip", "10.0.0.7")
        .payload(json!({"key": "dark-mode", "enabled": true, "rollout": {"percent": 25}}))
        .build();
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    sender.emit(&event);

    // Waits for the collector's answer; drop would too, but could not say how it went.
    match sender.shutdown() {
        Ok(report) => {
            println!(
                "delivered {} audit event(s) to {} ({})",
                report.delivered,
                sender.endpoint(),
                sender.protocol()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
