//! Load generator: sends OTLP log export requests of audit events over gRPC
//! from several concurrent clients and reports throughput (records/s) and
//! request latency percentiles. Every request waits for auditcol's
//! acknowledgement, so latency includes filtering, batching and export.
//!
//! ```sh
//! auditcol --config bench.yaml &
//! cargo run --release -p auditcol-e2e --bin loadgen -- --endpoint 127.0.0.1:4317 --records 2000000
//! ```

use std::time::{Duration, Instant};

use auditcol_model::{AuditEvent, ExportLogsServiceRequest, ResourceLogs, ScopeLogs};
use clap::Parser;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;

#[derive(Parser)]
struct Args {
    /// OTLP gRPC endpoint of the collector.
    #[arg(long, default_value = "127.0.0.1:4317")]
    endpoint: String,
    /// Records to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Records per export request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Concurrent clients (one HTTP/2 connection each).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

fn request(records: usize) -> ExportLogsServiceRequest {
    const KINDS: [(&str, &str); 4] = [
        ("flag", "created"),
        ("segment", "deleted"),
        ("flag", "updated"),
        ("variant", "created"),
    ];
    let log_records = (0..records)
        .map(|i| {
            let (noun, verb) = KINDS[i % KINDS.len()];
            let mut e = AuditEvent::new(noun, verb);
            e.metadata.actor.authentication = Some("token".into());
            e.metadata.actor.email = Some("dev@example.com".into());
            e.payload = serde_json::json!({"key": format!("flag-{i}"), "enabled": i % 2 == 0, "namespace_key": "default"});
            e.timestamp = 1_714_557_600_000_000_000 + i as u64;
            e.to_log_record()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let template = request(args.batch);
    let requests = args.records.div_ceil(args.batch);
    let per_client = requests.div_ceil(args.concurrency);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let endpoint = format!("http://{}", args.endpoint);
        let template = template.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = LogsServiceClient::connect(endpoint)
                .await
                .expect("cannot connect")
                .max_encoding_message_size(64 << 20);
            let mut latencies = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                client
                    .export(template.clone())
                    .await
                    .expect("export failed");
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let sent = latencies.len() * args.batch;
    println!(
        "records={sent} requests={} batch={} concurrency={} elapsed={:.2}s throughput={:.0} records/s latency p50={:?} p90={:?} p99={:?} max={:?}",
        latencies.len(),
        args.batch,
        args.concurrency,
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies[latencies.len() - 1],
    );
}
