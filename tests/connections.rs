//! Issue 12's connection flood, against the real binary: 1,000 connections
//! that never send a byte plus one request sent a byte a second, on every
//! listener. A normal client is served meanwhile; the silent ones are
//! closed after `idle_timeout` (gRPC: `max_connection_idle`); the slow one
//! after `read_header_timeout` (gRPC, which has none: `max_connection_idle`,
//! as it never opens a call).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use auditcol_e2e::{Collector, flipt_event, http_post};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;

const IDLE: usize = 1000;
/// Far beyond the 2 s and 1 s the config sets: only "closed eventually".
const BOUND: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "127.0.0.1:0"
        keepalive:
          server_parameters: {max_connection_idle: 2s}
      http:
        endpoint: "127.0.0.1:0"
        idle_timeout: 2s
        read_header_timeout: 1s
exporters:
  file:
    path: "{DIR}/audit.jsonl"
service:
  pipelines:
    logs: {receivers: [otlp], exporters: [file]}
"#;

/// The webhook receiver serves HTTP the same way; on its own collector, as
/// both listeners would be `http`.
const WEBHOOK_CONFIG: &str = r#"
receivers:
  webhook/flipt:
    endpoint: "127.0.0.1:0"
    idle_timeout: 2s
    read_header_timeout: 1s
exporters:
  file:
    path: "{DIR}/audit.jsonl"
service:
  pipelines:
    logs: {receivers: [webhook/flipt], exporters: [file]}
"#;

/// A client sending `bytes` one a second until the server closes the
/// connection (or all are sent); returns whether the server closed it.
fn trickle(addr: SocketAddr, bytes: &'static [u8]) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let mut tcp = TcpStream::connect(addr).unwrap();
        let begin = Instant::now();
        for &b in bytes {
            if tcp.write_all(&[b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_secs(1));
            if begin.elapsed() > BOUND {
                break;
            }
        }
        closed(&mut tcp)
    })
}

/// Whether the server closed `tcp` (end of input or a reset) within BOUND,
/// reading past any answer it sent first.
fn closed(tcp: &mut TcpStream) -> bool {
    let deadline = Instant::now() + BOUND;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        tcp.set_read_timeout(Some(deadline - Instant::now()))
            .unwrap();
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
    false
}

/// Opens IDLE silent connections and one trickling `slow`, calls `serve`
/// (a normal client) meanwhile, then checks every one is closed.
fn flood(addr: SocketAddr, slow: &'static [u8], serve: impl Fn()) {
    let mut idle: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let slow = trickle(addr, slow);
    serve();
    for (i, tcp) in idle.iter_mut().enumerate() {
        assert!(closed(tcp), "idle connection {i} to {addr} still open");
    }
    assert!(
        slow.join().unwrap(),
        "the slow request to {addr} still open"
    );
    // The places are free again: a normal client is served after the flood.
    serve();
}

#[test]
fn idle_and_slow_connections_are_closed_and_normal_clients_served_on_every_listener() {
    let collector = Collector::start(CONFIG);
    let http = collector.endpoint("http");
    let grpc = collector.endpoint("grpc");
    let webhook_collector = Collector::start(WEBHOOK_CONFIG);
    let webhook = webhook_collector.component_endpoint("webhook/flipt");

    let head: &[u8] =
        b"POST /v1/logs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\r\n";
    flood(http, head, || {
        let reply = http_post(
            http,
            "/v1/logs",
            &[("Content-Type", "application/json")],
            br#"{"resourceLogs": []}"#,
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
    });

    flood(webhook, head, || {
        let event = flipt_event("flag", "created", "f", "2024-05-01T10:00:00Z");
        let reply = http_post(
            webhook,
            "/",
            &[("Content-Type", "application/json")],
            event.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
    });

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    flood(grpc, preface, || {
        runtime.block_on(async {
            let mut client = LogsServiceClient::connect(format!("http://{grpc}"))
                .await
                .unwrap();
            client
                .export(ExportLogsServiceRequest::default())
                .await
                .unwrap();
        });
    });
}
