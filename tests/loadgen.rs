//! Load generator: sends OTLP log export requests of audit events over gRPC
//! or HTTP from several connections and reports throughput (records/s) and
//! request latency percentiles as one `key=value` line.
//!
//! Each connection sends one request at a time and waits for the answer
//! before the next, so with auditcol the latency includes filtering,
//! batching and export. The request is built and protobuf-encoded once; every
//! send reuses those bytes (gRPC through a pass-through codec, HTTP as one
//! pre-built HTTP/1.1 request), so the generator spends little CPU per
//! request and most of the machine is left to the collector.
//!
//! ```sh
//! auditcol --config collector-config/bench-file-json.yaml &
//! loadgen --protocol grpc --endpoint 127.0.0.1:4317 --connections 8 --batch 1024 --duration 10
//! loadgen --protocol http --endpoint 127.0.0.1:4318 --connections 4 --batch 512 --records 1000000
//! ```
//!
//! Output (one line on stdout; exit status 1 if any request failed):
//!
//! ```text
//! protocol=grpc connections=8 batch=1024 request_bytes=… requests=… records=… failures=0 elapsed_s=… records_per_s=… p50_ms=… p90_ms=… p99_ms=… max_ms=… loadgen_cpu_s=…
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auditcol_model::{AuditEvent, ExportLogsServiceRequest, ResourceLogs, ScopeLogs};
use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

const GRPC_EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const HTTP_LOGS_PATH: &str = "/v1/logs";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// OTLP/gRPC (`LogsService/Export`), one HTTP/2 connection per client.
    Grpc,
    /// OTLP/HTTP (`POST /v1/logs`, `application/x-protobuf`), one HTTP/1.1 keep-alive connection per client.
    Http,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }
}

/// Sends pre-encoded OTLP log export requests of audit events to a collector
/// and prints records/s and latency percentiles as one key=value line.
#[derive(Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// Protocol to send with.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    protocol: Protocol,
    /// host:port of the collector's OTLP listener [default: 127.0.0.1:4317 for grpc, 127.0.0.1:4318 for http].
    #[arg(long)]
    endpoint: Option<String>,
    /// Concurrent connections, each sending one request at a time.
    #[arg(long, visible_alias = "concurrency", default_value_t = 8)]
    connections: usize,
    /// Records per export request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Records to send in all, rounded up to whole requests [default: 1000000 unless --duration is given].
    #[arg(long, conflicts_with = "duration")]
    records: Option<u64>,
    /// Send for this many seconds (fractions allowed) instead of a number of records.
    #[arg(long)]
    duration: Option<f64>,
    /// Worker threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// One export request of `records` audit events (~370 bytes each): four
/// kinds of noun:verb, actor attributes and a small kvlist payload.
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

/// A gRPC codec that sends already-encoded message bytes as they are and
/// hands back the raw response bytes: no protobuf encoding per request.
#[derive(Clone, Copy)]
struct PreEncoded {
    /// Initial size of tonic's encode buffer: the request size, so that the
    /// copy into the frame never has to grow the buffer.
    buffer: usize,
}

impl Codec for PreEncoded {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = PreEncoded;
    type Decoder = PreEncoded;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.reserve(item.len());
        dst.put_slice(&item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(self.buffer + 64, usize::MAX)
    }
}

impl Decoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Why a request did not count.
struct Failure {
    message: String,
    /// The connection is unusable (I/O error, `Connection: close`): reconnect.
    reconnect: bool,
}

impl Failure {
    fn answer(message: String) -> Failure {
        Failure {
            message,
            reconnect: false,
        }
    }
    fn io(message: String) -> Failure {
        Failure {
            message,
            reconnect: true,
        }
    }
}

/// Records rejected in an `ExportLogsServiceResponse` (partial success).
fn rejected(body: &[u8]) -> Result<i64, Failure> {
    let response = ExportLogsServiceResponse::decode(body)
        .map_err(|e| Failure::answer(format!("undecodable ExportLogsServiceResponse: {e}")))?;
    Ok(response
        .partial_success
        .map_or(0, |p| p.rejected_log_records))
}

/// One gRPC connection sending the pre-encoded request.
struct GrpcConn {
    client: tonic::client::Grpc<Channel>,
    body: Bytes,
    codec: PreEncoded,
    path: PathAndQuery,
}

impl GrpcConn {
    async fn connect(endpoint: &str, body: Bytes) -> Result<GrpcConn, String> {
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        let codec = PreEncoded { buffer: body.len() };
        Ok(GrpcConn {
            client: tonic::client::Grpc::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(usize::MAX),
            body,
            codec,
            path: PathAndQuery::from_static(GRPC_EXPORT_PATH),
        })
    }

    async fn send(&mut self) -> Result<i64, Failure> {
        self.client
            .ready()
            .await
            .map_err(|e| Failure::io(format!("channel not ready: {e}")))?;
        let response = self
            .client
            .unary(
                tonic::Request::new(self.body.clone()),
                self.path.clone(),
                self.codec,
            )
            .await
            .map_err(|s| Failure::answer(format!("gRPC {:?}: {}", s.code(), s.message())))?;
        rejected(response.get_ref())
    }
}

/// One HTTP/1.1 keep-alive connection sending the pre-built request.
struct HttpConn {
    endpoint: String,
    stream: TcpStream,
    /// Request line, headers and body, built once.
    request: Bytes,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
}

/// Where `needle` first occurs in `hay` at or after `from`.
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

impl HttpConn {
    async fn open(endpoint: &str) -> Result<TcpStream, String> {
        let stream = TcpStream::connect(endpoint)
            .await
            .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        Ok(stream)
    }

    async fn connect(endpoint: &str, body: &[u8]) -> Result<HttpConn, String> {
        let head = format!(
            "POST {HTTP_LOGS_PATH} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        Ok(HttpConn {
            endpoint: endpoint.to_string(),
            stream: Self::open(endpoint).await?,
            request: Bytes::from(request),
            buf: Vec::with_capacity(64 << 10),
        })
    }

    async fn reconnect(&mut self) -> Result<(), String> {
        self.stream = Self::open(&self.endpoint).await?;
        self.buf.clear();
        Ok(())
    }

    /// Reads until `buf` holds at least `n` bytes.
    async fn fill(&mut self, n: usize) -> Result<(), Failure> {
        while self.buf.len() < n {
            self.read_more().await?;
        }
        Ok(())
    }

    async fn read_more(&mut self) -> Result<(), Failure> {
        self.buf.reserve(16 << 10);
        let read = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| Failure::io(format!("read: {e}")))?;
        if read == 0 {
            return Err(Failure::io("connection closed by the server".into()));
        }
        Ok(())
    }

    /// Reads until `buf[from..]` contains `needle`; returns its position.
    async fn read_until(&mut self, from: usize, needle: &[u8]) -> Result<usize, Failure> {
        loop {
            if let Some(p) = find(&self.buf, from, needle) {
                return Ok(p);
            }
            self.read_more().await?;
        }
    }

    async fn send(&mut self) -> Result<i64, Failure> {
        self.stream
            .write_all(&self.request)
            .await
            .map_err(|e| Failure::io(format!("write: {e}")))?;
        let head_end = self.read_until(0, b"\r\n\r\n").await?;
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| Failure::io("response head is not UTF-8".into()))?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::io(format!("bad status line in {head:?}")))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let start = head_end + 4;
        let (body, end) = if chunked {
            self.read_chunked(start).await?
        } else if let Some(length) = length {
            self.fill(start + length).await?;
            (self.buf[start..start + length].to_vec(), start + length)
        } else {
            return Err(Failure::io(
                "response without Content-Length or chunked body".into(),
            ));
        };
        self.buf.drain(..end);
        let result = if status == 200 {
            rejected(&body)
        } else {
            Err(Failure::answer(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )))
        };
        match result {
            Err(mut f) if close => {
                f.reconnect = true;
                Err(f)
            }
            Ok(_) if close => Err(Failure::io("server closed the connection".into())),
            other => other,
        }
    }

    /// Reads a chunked body starting at `pos`; returns it and the end of the message.
    async fn read_chunked(&mut self, mut pos: usize) -> Result<(Vec<u8>, usize), Failure> {
        let mut body = Vec::new();
        loop {
            let line_end = self.read_until(pos, b"\r\n").await?;
            let line = std::str::from_utf8(&self.buf[pos..line_end]).unwrap_or("");
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16)
                .map_err(|_| Failure::io(format!("bad chunk size {line:?}")))?;
            pos = line_end + 2;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    let end = self.read_until(pos, b"\r\n").await?;
                    let empty = end == pos;
                    pos = end + 2;
                    if empty {
                        return Ok((body, pos));
                    }
                }
            }
            self.fill(pos + size + 2).await?;
            body.extend_from_slice(&self.buf[pos..pos + size]);
            pos += size + 2;
        }
    }
}

enum Conn {
    Grpc(GrpcConn),
    Http(HttpConn),
}

impl Conn {
    async fn send(&mut self) -> Result<i64, Failure> {
        match self {
            Conn::Grpc(c) => c.send().await,
            Conn::Http(c) => c.send().await,
        }
    }

    async fn reconnect(&mut self) -> Result<(), String> {
        match self {
            // A tonic channel reconnects by itself.
            Conn::Grpc(_) => Ok(()),
            Conn::Http(c) => c.reconnect().await,
        }
    }
}

/// When the connections stop sending.
#[derive(Clone, Copy)]
enum Stop {
    /// After this many requests in all.
    Requests(u64),
    /// At this instant (requests in flight finish).
    At(Instant),
}

#[derive(Default)]
struct Outcome {
    latencies: Vec<Duration>,
    records: u64,
    failures: u64,
}

async fn drive(
    mut conn: Conn,
    batch: u64,
    stop: Stop,
    claimed: Arc<AtomicU64>,
    errors_shown: Arc<AtomicU64>,
) -> Outcome {
    let mut out = Outcome::default();
    loop {
        match stop {
            Stop::Requests(n) => {
                if claimed.fetch_add(1, Ordering::Relaxed) >= n {
                    break;
                }
            }
            Stop::At(deadline) => {
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        let t = Instant::now();
        match conn.send().await {
            Ok(rejected) => {
                out.latencies.push(t.elapsed());
                out.records += batch.saturating_sub(rejected.max(0) as u64);
                if rejected > 0 {
                    out.failures += 1;
                }
            }
            Err(f) => {
                out.failures += 1;
                if errors_shown.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("loadgen: request failed: {}", f.message);
                }
                if f.reconnect
                    && let Err(e) = conn.reconnect().await
                {
                    eprintln!("loadgen: {e}; this connection stops");
                    break;
                }
            }
        }
    }
    out
}

/// CPU seconds (user + system) this process has used so far, from
/// /proc/self/stat (Linux; clock ticks of 1/100 s).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn main() {
    let args = Args::parse();
    if args.connections == 0 || args.batch == 0 || args.threads == 0 {
        eprintln!("loadgen: --connections, --batch and --threads must be at least 1");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    let code = runtime.block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| match args.protocol {
            Protocol::Grpc => "127.0.0.1:4317".into(),
            Protocol::Http => "127.0.0.1:4318".into(),
        });
    let body = Bytes::from(request(args.batch).encode_to_vec());

    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let conn = match args.protocol {
            Protocol::Grpc => GrpcConn::connect(&endpoint, body.clone())
                .await
                .map(Conn::Grpc),
            Protocol::Http => HttpConn::connect(&endpoint, &body).await.map(Conn::Http),
        };
        match conn {
            Ok(c) => conns.push(c),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return 2;
            }
        }
    }

    let batch = args.batch as u64;
    let cpu_before = own_cpu_seconds();
    let started = Instant::now();
    let stop = match (args.duration, args.records) {
        (Some(secs), _) => Stop::At(started + Duration::from_secs_f64(secs.max(0.0))),
        (None, records) => Stop::Requests(records.unwrap_or(1_000_000).div_ceil(batch)),
    };
    let claimed = Arc::new(AtomicU64::new(0));
    let errors_shown = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            tokio::spawn(drive(
                conn,
                batch,
                stop,
                claimed.clone(),
                errors_shown.clone(),
            ))
        })
        .collect();
    let mut total = Outcome::default();
    for task in tasks {
        let out = task.await.expect("a connection task panicked");
        total.latencies.extend(out.latencies);
        total.records += out.records;
        total.failures += out.failures;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, own_cpu_seconds()) {
        (Some(a), Some(b)) => format!("{:.2}", b - a),
        _ => "nan".into(),
    };

    let mut lat = total.latencies;
    lat.sort_unstable();
    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
    let pct = |p: f64| match lat.len() {
        0 => "nan".to_string(),
        n => ms(lat[((n as f64 * p) as usize).min(n - 1)]),
    };
    println!(
        "protocol={} connections={} batch={} request_bytes={} requests={} records={} failures={} elapsed_s={:.3} records_per_s={:.0} p50_ms={} p90_ms={} p99_ms={} max_ms={} loadgen_cpu_s={}",
        args.protocol.name(),
        args.connections,
        args.batch,
        body.len(),
        lat.len(),
        total.records,
        total.failures,
        elapsed,
        total.records as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lat.last().map_or("nan".into(), |d| ms(*d)),
        cpu,
    );
    if total.failures > 0 || lat.is_empty() {
        1
    } else {
        0
    }
}
