//! `auditcol send`: one audit event from flags, or Flipt v0.2 JSON events
//! from standard input, to an OTLP endpoint through `auditcol-sdk`.
//!
//! Exit status: 0 when every event was delivered; 1 when an event could not
//! be built (a bad flag value, an invalid name, a payload that is not JSON,
//! a bad input line), or was refused, or the endpoint could not be reached
//! or did not answer in time; 2 for command-line usage errors (clap's).

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use auditcol_core::config::ConfigDuration;
use auditcol_sdk::model::timestamp::parse_rfc3339;
use auditcol_sdk::{AuditEvent, AuditSender, DeliveryError, DeliveryReport, Protocol};

/// Events per flush when reading standard input: the batch processor's
/// export batch, well under its queue.
const EVENTS_PER_FLUSH: usize = 512;

/// The longest input line read; a collector refuses far smaller requests.
const MAX_LINE_BYTES: usize = 8 << 20;

/// The arguments of `auditcol send`.
#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The endpoint: http://host:port (plain text) or https://host:port (TLS).
    /// For HTTP, logs are POSTed to <URL>/v1/logs.
    /// [default: http://127.0.0.1:4317 for grpc, http://127.0.0.1:4318 for http/*]
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,

    /// OTLP over gRPC, or over HTTP with protobuf or JSON bodies.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Grpc)]
    protocol: ProtocolArg,

    /// How long one export may take, connecting and retrying included.
    #[arg(long, default_value = "10s", value_parser = ConfigDuration::parse)]
    timeout: ConfigDuration,

    /// PEM file of CA certificates to trust for an https:// endpoint, besides the built-in roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// The event's type: the noun (flag, segment, ...).
    #[arg(long = "type", value_name = "NOUN", required_unless_present = "stdin")]
    event_type: Option<String>,

    /// The event's action: the verb (created, updated, deleted, ...).
    #[arg(long, value_name = "VERB", required_unless_present = "stdin")]
    action: Option<String>,

    /// The outcome; `success` is sent at severity INFO, anything else at WARN.
    #[arg(long, value_name = "STATUS", default_value = "success")]
    status: String,

    /// An actor field, e.g. email=kyle@example.com; repeat for more.
    #[arg(long, value_name = "FIELD=VALUE")]
    actor: Vec<String>,

    /// The payload: JSON text, or @FILE to read it from a file.
    #[arg(long, value_name = "JSON|@FILE")]
    payload: Option<String>,

    /// When it happened, RFC 3339 (e.g. 2024-05-01T10:00:00Z). [default: now]
    #[arg(long, value_name = "RFC3339")]
    timestamp: Option<String>,

    /// The event id (attribute audit.id). [default: the collector assigns a UUIDv7]
    #[arg(long, value_name = "ID")]
    id: Option<String>,

    /// Read Flipt v0.2 JSON events from standard input, one per line, instead
    /// of building one from flags. Blank lines are skipped; a bad line is
    /// reported with its number and the others are still sent; sending
    /// stops at the first batch that is not delivered.
    #[arg(
        long,
        conflicts_with_all = ["event_type", "action", "status", "actor", "payload", "timestamp", "id"]
    )]
    stdin: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ProtocolArg {
    Grpc,
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    #[value(name = "http/json")]
    HttpJson,
}

impl From<ProtocolArg> for Protocol {
    fn from(arg: ProtocolArg) -> Self {
        match arg {
            ProtocolArg::Grpc => Protocol::Grpc,
            ProtocolArg::HttpProtobuf => Protocol::HttpProtobuf,
            ProtocolArg::HttpJson => Protocol::HttpJson,
        }
    }
}

/// Runs `auditcol send`.
pub fn run(args: SendArgs) -> ExitCode {
    let diagnostics = OtlpDiagnostics::install();
    let outcome = if args.stdin {
        build_sender(&args).and_then(|sender| send_stdin(&sender, &diagnostics))
    } else {
        event_from_flags(&args).and_then(|event| {
            let sender = build_sender(&args)?;
            sender.emit(&event);
            let report = finish(&sender, sender.shutdown(), &diagnostics)?;
            println!("{}", delivered(&sender, report.delivered));
            Ok(())
        })
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build_sender(args: &SendArgs) -> Result<AuditSender, String> {
    let mut builder = AuditSender::builder()
        .protocol(args.protocol.into())
        .timeout(args.timeout.0)
        .service_name("auditcol-send");
    if let Some(endpoint) = &args.endpoint {
        builder = builder.endpoint(endpoint);
    }
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read --ca-file {}: {e}", path.display()))?;
        builder = builder.tls_ca_pem(pem);
    }
    builder.build().map_err(|e| e.to_string())
}

fn event_from_flags(args: &SendArgs) -> Result<AuditEvent, String> {
    // clap requires both unless --stdin, which takes the other branch.
    let (Some(event_type), Some(action)) = (&args.event_type, &args.action) else {
        return Err("--type and --action are required".to_owned());
    };
    let mut builder = AuditEvent::builder(event_type, action).status(&args.status);
    for pair in &args.actor {
        let (field, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--actor {pair:?} is not FIELD=VALUE"))?;
        builder = builder.actor(field, value);
    }
    if let Some(payload) = &args.payload {
        builder = builder.payload(read_payload(payload)?);
    }
    if let Some(timestamp) = &args.timestamp {
        let nanos = parse_rfc3339(timestamp).map_err(|e| format!("--timestamp: {e}"))?;
        builder = builder.timestamp_unix_nanos(nanos);
    }
    if let Some(id) = &args.id {
        builder = builder.id(id);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the event: {e}"))
}

/// `--payload`: JSON text, or `@FILE`.
fn read_payload(payload: &str) -> Result<serde_json::Value, String> {
    match payload.strip_prefix('@') {
        Some(path) => {
            let path = Path::new(path);
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --payload file {}: {e}", path.display()))?;
            serde_json::from_str(&text)
                .map_err(|e| format!("--payload file {} is not JSON: {e}", path.display()))
        }
        None => serde_json::from_str(payload).map_err(|e| format!("--payload is not JSON: {e}")),
    }
}

/// Sends every good line of standard input; reports bad lines as it goes.
fn send_stdin(sender: &AuditSender, diagnostics: &OtlpDiagnostics) -> Result<(), String> {
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    let (mut number, mut bad_lines, mut pending, mut delivered_total) = (0u64, 0u64, 0usize, 0u64);
    loop {
        number += 1;
        let ended = match read_line(&mut input, &mut line) {
            Ok(Line::End) => true,
            Ok(Line::Read) => {
                if let Some(event) = parse_line(number, &line, &mut bad_lines) {
                    sender.emit(&event);
                    pending += 1;
                }
                false
            }
            Ok(Line::TooLong) => {
                eprintln!("error: stdin line {number}: longer than {MAX_LINE_BYTES} bytes");
                bad_lines += 1;
                false
            }
            Err(e) => return Err(format!("cannot read standard input: {e}")),
        };
        if pending == EVENTS_PER_FLUSH || (ended && pending > 0) {
            pending = 0;
            match finish(sender, sender.force_flush(), diagnostics) {
                Ok(report) => delivered_total += report.delivered,
                Err(message) => {
                    let _ = sender.shutdown();
                    return Err(if ended {
                        message
                    } else {
                        format!(
                            "{message}\nstopped after stdin line {number}: the lines after it were not sent"
                        )
                    });
                }
            }
        }
        if ended {
            break;
        }
    }
    let _ = sender.shutdown();
    println!("{}", delivered(sender, delivered_total));
    match bad_lines {
        0 => Ok(()),
        1 => Err("1 stdin line was not a valid audit event (see above)".to_owned()),
        n => Err(format!(
            "{n} stdin lines were not valid audit events (see above)"
        )),
    }
}

/// One event from a line of input, or `None` (and the error reported) for a
/// bad line or nothing for a blank one.
fn parse_line(number: u64, line: &[u8], bad_lines: &mut u64) -> Option<AuditEvent> {
    let parsed = std::str::from_utf8(line)
        .map_err(|_| "not UTF-8".to_owned())
        .and_then(|text| {
            if text.trim().is_empty() {
                return Ok(None);
            }
            AuditEvent::from_flipt_json(text)
                .map(Some)
                .map_err(|e| e.to_string())
        });
    match parsed {
        Ok(event) => event,
        Err(reason) => {
            eprintln!("error: stdin line {number}: {reason}");
            *bad_lines += 1;
            None
        }
    }
}

enum Line {
    Read,
    TooLong,
    End,
}

/// Reads one line into `line` (without its end), at most
/// [`MAX_LINE_BYTES`]; a longer one is skipped to its end.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<Line> {
    line.clear();
    let limit = MAX_LINE_BYTES as u64 + 1;
    let read = input.by_ref().take(limit).read_until(b'\n', line)?;
    if read == 0 {
        return Ok(Line::End);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        return Ok(Line::Read);
    }
    if line.len() as u64 == limit {
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let n = input.by_ref().take(64 << 10).read_until(b'\n', &mut rest)?;
            if n == 0 || rest.last() == Some(&b'\n') {
                return Ok(Line::TooLong);
            }
        }
    }
    // The last line, without a line end.
    Ok(Line::Read)
}

/// A flush or shutdown result as the command reports it: what the SDK
/// knows, plus what the OTLP gRPC exporter only logged (the collector's
/// message, records it rejected in an accepted request).
fn finish(
    sender: &AuditSender,
    result: Result<DeliveryReport, DeliveryError>,
    diagnostics: &OtlpDiagnostics,
) -> Result<DeliveryReport, String> {
    let notes = diagnostics.take();
    match result {
        // Worded as the SDK words the same case over HTTP.
        Ok(report) => match notes.rejected {
            Some((rejected, message)) => Err(format!(
                "{rejected} of {total} audit events not delivered to {} ({}): the endpoint rejected {rejected} of {total}: {message}",
                sender.endpoint(),
                sender.protocol(),
                total = report.delivered,
            )),
            None => Ok(report),
        },
        Err(e) => {
            let text = e.to_string();
            // A message the exporter made up locally (a connection error)
            // is in the SDK's reason already; one from the collector is not.
            Err(match notes.grpc_message {
                Some(said) if !text.contains(&said) => {
                    format!("{text}; the collector said: {said}")
                }
                _ => text,
            })
        }
    }
}

fn delivered(sender: &AuditSender, count: u64) -> String {
    format!(
        "delivered {count} audit event{} to {} ({})",
        if count == 1 { "" } else { "s" },
        sender.endpoint(),
        sender.protocol()
    )
}

/// What the official OTLP gRPC exporter logs but does not return: the
/// server's message of a failed export and a partial success. It logs them
/// as `tracing` events of target `opentelemetry-otlp`; this layer keeps
/// them for the report (and `RUST_LOG` still shows every log on stderr).
#[derive(Clone, Default)]
struct OtlpDiagnostics(Arc<Mutex<Notes>>);

#[derive(Default)]
struct Notes {
    grpc_message: Option<String>,
    rejected: Option<(i64, String)>,
}

impl OtlpDiagnostics {
    fn install() -> Self {
        use tracing_subscriber::Layer;
        use tracing_subscriber::filter::{EnvFilter, Targets};
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let diagnostics = Self::default();
        let capture = diagnostics
            .clone()
            .with_filter(Targets::new().with_target("opentelemetry-otlp", tracing::Level::DEBUG));
        let logs = std::env::var_os("RUST_LOG").map(|_| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(EnvFilter::from_default_env())
        });
        // Fails only if a subscriber is set already: then there is nothing to capture with.
        let _ = tracing_subscriber::registry()
            .with(capture)
            .with(logs)
            .try_init();
        diagnostics
    }

    fn take(&self) -> Notes {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for OtlpDiagnostics {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let name = event.metadata().name();
        if name != "TonicLogsClient.ExportFailed" && name != "TonicLogsClient.PartialSuccess" {
            return;
        }
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let mut notes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match (name, fields) {
            (
                "TonicLogsClient.ExportFailed",
                EventFields {
                    grpc_message: Some(message),
                    ..
                },
            ) if !message.is_empty() => notes.grpc_message = Some(message),
            (
                "TonicLogsClient.PartialSuccess",
                EventFields {
                    rejected_log_records: Some(rejected),
                    error_message,
                    ..
                },
            ) if rejected > 0 => {
                notes.rejected = Some((rejected, error_message.unwrap_or_default()))
            }
            _ => {}
        }
    }
}

#[derive(Default)]
struct EventFields {
    grpc_message: Option<String>,
    rejected_log_records: Option<i64>,
    error_message: Option<String>,
}

impl tracing::field::Visit for EventFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "grpc_message" => self.grpc_message = Some(value.to_owned()),
            "error_message" => self.error_message = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "rejected_log_records" {
            self.rejected_log_records = Some(value);
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.record_i64(field, i64::try_from(value).unwrap_or(i64::MAX));
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Result<String, &'static str>> {
        let mut reader = std::io::BufReader::new(input);
        let mut line = Vec::new();
        let mut out = Vec::new();
        loop {
            match read_line(&mut reader, &mut line).unwrap() {
                Line::End => return out,
                Line::Read => out.push(Ok(String::from_utf8(line.clone()).unwrap())),
                Line::TooLong => out.push(Err("too long")),
            }
        }
    }

    #[test]
    fn lines_end_at_lf_or_crlf_and_the_last_may_have_no_end() {
        assert_eq!(
            lines(b"a\r\nb\n\nc"),
            [
                Ok("a".into()),
                Ok("b".into()),
                Ok(String::new()),
                Ok("c".into())
            ]
        );
    }

    #[test]
    fn a_line_past_the_limit_is_skipped_whole() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 10];
        input.extend_from_slice(b"\nnext\n");
        assert_eq!(lines(&input), [Err("too long"), Ok("next".into())]);
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_read() {
        let mut input = vec![b'x'; MAX_LINE_BYTES];
        input.push(b'\n');
        assert_eq!(lines(&input).len(), 1);
        assert!(lines(&input)[0].is_ok());
    }

    #[test]
    fn the_payload_is_json_text_or_a_file() {
        assert_eq!(
            read_payload(r#"{"key":"x"}"#).unwrap(),
            serde_json::json!({"key": "x"})
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, "[1, 2]").unwrap();
        assert_eq!(
            read_payload(&format!("@{}", path.display())).unwrap(),
            serde_json::json!([1, 2])
        );
        let err = read_payload("{oops").unwrap_err();
        assert!(err.starts_with("--payload is not JSON: "), "{err}");
        let err = read_payload("@/nonexistent/p.json").unwrap_err();
        assert!(
            err.starts_with("cannot read --payload file /nonexistent/p.json: "),
            "{err}"
        );
    }
}
