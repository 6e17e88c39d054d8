//! OTLP/gRPC: the `LogsService/Export` method, framed by hand on tonic's
//! HTTP/2 transport.
//!
//! The request message is read as it arrives and handed to the pipeline as
//! the bytes it arrived in: no protobuf decode into generated structs, and
//! no buffer reserved for the size a client *declares* (tonic's own framing
//! reserves it per stream before any of it arrives, so half-open streams
//! declaring 4 MiB each could take the process's memory). The buffer grows
//! only with bytes received, up to `max_recv_msg_size`; a declared size over
//! the limit is refused before its body is read.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use auditcol_core::auth::{AuthError, RequestAuth};
use auditcol_core::batch::Chunks;
use auditcol_core::config::ConfigDuration;
use auditcol_core::receiverhelper::{
    ConnectionLimit, ConnectionRules, DEFAULT_TLS_HANDSHAKE_TIMEOUT, PingPolicy, admitted_incoming,
    client_addr, tls_incoming,
};
use auditcol_core::telemetry::RefusalReason;
use auditcol_core::tls::ServerTls;
use auditcol_core::{Decoded, LogBatch, PipelineError};
use bytes::{BufMut, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::server::TcpConnectInfo;
use tonic::{Code, Status};

use crate::compression::{GunzipError, gunzip};
use crate::config::KeepaliveServerParameters;
use crate::ingest::{Ingest, Rejection, RetryInfo, RpcStatus};

/// The gRPC service name of OTLP log export.
const SERVICE_NAME: &str = "opentelemetry.proto.collector.logs.v1.LogsService";
/// The path of its one method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
/// The gRPC message prefix: a compressed flag and a 32-bit length.
const PREFIX_LEN: usize = 5;
/// Frames of one message kept as they are; later ones are copied.
const MAX_PIECES: usize = 1024;
/// The smallest frame kept as it is rather than copied: half of HTTP/2's
/// default (and our) largest frame. A kept frame holds on to the read
/// buffer it is a slice of (at most a few frames long) until the request is
/// answered; smaller frames would let a client pin many such buffers with
/// few bytes.
const MIN_KEPT_FRAME: usize = 8 * 1024;

/// Largest header list of one request, in bytes.
const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;

/// What one gRPC listener allows.
pub(crate) struct Limits {
    /// Largest message, in bytes, as received and decompressed.
    pub(crate) max_recv_msg_size: usize,
    /// Most streams in flight on one HTTP/2 connection.
    pub(crate) max_concurrent_streams: u32,
    /// Most connections open at once.
    pub(crate) connections: ConnectionLimit,
    /// Pings, and the idleness and age at which a connection is sent away.
    pub(crate) keepalive: KeepaliveServerParameters,
    /// How often clients may ping.
    pub(crate) ping_policy: PingPolicy,
    /// TLS, when configured: ALPN `h2`, handshakes off the accept loop.
    pub(crate) tls: Option<Arc<ServerTls>>,
}

/// Serves OTLP/gRPC on `listener` until `shutdown` is cancelled, then lets
/// requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    limits: Limits,
    auth: Option<RequestAuth>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let keepalive = &limits.keepalive;
    let nonzero = |d: ConfigDuration| (!d.0.is_zero()).then_some(d.0);
    let mut server = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        // Headers are small in OTLP: a client may not make the server hold
        // more than this per request (h2's default is 16 MiB).
        .http2_max_header_list_size(MAX_HEADER_LIST_SIZE)
        .http2_keepalive_interval(nonzero(keepalive.time))
        .http2_keepalive_timeout(nonzero(keepalive.timeout));
    if let Some(age) = nonzero(keepalive.max_connection_age) {
        server = server.max_connection_age(age);
        if let Some(grace) = nonzero(keepalive.max_connection_age_grace) {
            server = server.max_connection_age_grace(grace);
        }
    }
    // max_connection_idle and the ping policy: h2 keeps neither itself.
    let rules = ConnectionRules {
        idle_timeout: nonzero(keepalive.max_connection_idle),
        read_header_timeout: None,
        ping_policy: Some(limits.ping_policy),
    };
    let router = server.add_service(LogsGrpc {
        ingest,
        max_recv_msg_size: limits.max_recv_msg_size,
        auth: auth.map(Arc::new),
    });
    // Connections are admitted up to max_connections, with TCP_NODELAY
    // (without it a small response waits for the client's delayed ACK:
    // ~40 ms added to every request of a lone synchronous client).
    match limits.tls {
        None => {
            router
                .serve_with_incoming_shutdown(
                    admitted_incoming(listener, limits.connections, rules),
                    shutdown.cancelled_owned(),
                )
                .await
        }
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(
                    tls_incoming(
                        listener,
                        limits.connections,
                        tls,
                        DEFAULT_TLS_HANDSHAKE_TIMEOUT,
                        rules,
                    ),
                    shutdown.cancelled_owned(),
                )
                .await
        }
    }
}

/// The `LogsService` server: one unary method, `Export`.
#[derive(Clone)]
struct LogsGrpc {
    ingest: Arc<Ingest>,
    max_recv_msg_size: usize,
    /// Checked on the request's headers before anything is read.
    auth: Option<Arc<RequestAuth>>,
}

impl NamedService for LogsGrpc {
    const NAME: &'static str = SERVICE_NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for LogsGrpc {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let ingest = self.ingest.clone();
        let max = self.max_recv_msg_size;
        let auth = self.auth.clone();
        Box::pin(async move {
            if let Some(auth) = auth
                && let Err(refused) =
                    authenticate(&auth, request.headers(), request.extensions()).await
            {
                return Ok(refused.into_http());
            }
            Ok(match export(&ingest, max, request).await {
                Ok(response) => response,
                Err(status) => status.into_http(),
            })
        })
    }
}

/// Lets the call in, or answers UNAUTHENTICATED (UNAVAILABLE when the
/// credentials cannot be checked now) without reading its message.
async fn authenticate(
    auth: &RequestAuth,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Result<(), Status> {
    auth.check(headers, client_addr(extensions))
        .await
        .map_err(|refused: AuthError| {
            Status::new(Code::from_i32(refused.grpc_code()), refused.to_string())
        })
}

/// One `Export` call: the message read, decoded, handed to the pipeline.
/// Refusals are counted and logged (rate-limited) with the client's address.
async fn export(
    ingest: &Ingest,
    max: usize,
    request: http::Request<tonic::body::Body>,
) -> Result<http::Response<tonic::body::Body>, Status> {
    let client = request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr);
    // Admitted by the memory limiters before anything is read; what the
    // request costs is reserved as it arrives and until the pipeline answered.
    let mut reservation = ingest
        .admit("grpc", client)
        .map_err(|e| rejection_status(Rejection::Pipeline(e)))?;
    let mut reserve = |bytes: usize| {
        ingest
            .reserve(&mut reservation, bytes, "grpc", client)
            .map_err(|e| rejection_status(Rejection::Pipeline(e)))
    };
    let decoded = match receive(max, request, &mut reserve).await {
        Ok(decoded) => decoded,
        Err(status) => {
            if let Some(reason) = refusal_reason(status.code()) {
                ingest.refuse("grpc", reason, client, status.message());
            }
            return Err(status);
        }
    };
    let accepted = ingest
        .accept(decoded, "grpc", client)
        .await
        .map_err(rejection_status)?;
    Ok(grpc_response(&accepted.response()))
}

/// Why a request was refused before its records were read, by the status
/// it is answered with; `None` when the client went away (no refusal).
fn refusal_reason(code: Code) -> Option<RefusalReason> {
    match code {
        Code::ResourceExhausted => Some(RefusalReason::TooLarge),
        Code::Unimplemented => Some(RefusalReason::Unsupported),
        // The client went away; or the memory limiters refused (counted then).
        Code::Cancelled | Code::Unavailable => None,
        _ => Some(RefusalReason::Invalid),
    }
}

/// What a request reserves with the memory limiters as it grows: refused
/// with UNAVAILABLE.
type Reserve<'a> = dyn FnMut(usize) -> Result<(), Status> + Send + 'a;

/// The request's message, read and decoded; `reserve` is told of every
/// byte received, decompressed, and of the cost of decoding before it starts.
async fn receive(
    max: usize,
    request: http::Request<tonic::body::Body>,
    reserve: &mut Reserve<'_>,
) -> Result<Decoded, Status> {
    if request.uri().path() != EXPORT_PATH {
        return Err(Status::unimplemented(format!(
            "unknown method {}: this server implements {EXPORT_PATH}",
            request.uri().path()
        )));
    }
    let gzip = request_encoding(request.headers())?;
    let (compressed, message) = read_message(request.into_body(), max, reserve).await?;
    let message = match (compressed, gzip) {
        (false, _) => message,
        (true, false) => {
            return Err(Status::unimplemented(
                "the message is flagged compressed but the request has no grpc-encoding: send grpc-encoding: gzip",
            ));
        }
        (true, true) => match gunzip(message.reader(), max) {
            Ok(plain) => {
                reserve(plain.len())?;
                Chunks::from(plain)
            }
            Err(GunzipError::TooLarge) => {
                return Err(Status::resource_exhausted(format!(
                    "decompressed request exceeds max_recv_msg_size_mib ({} MiB)",
                    max / (1024 * 1024)
                )));
            }
            Err(GunzipError::Invalid(e)) => {
                return Err(Status::invalid_argument(format!(
                    "invalid compressed request: {e}"
                )));
            }
        },
    };
    reserve(LogBatch::decode_cost(&message))?;
    LogBatch::decode_protobuf_chunks(&message).map_err(|e| Status::invalid_argument(e.message))
}

/// Whether messages may be gzip-compressed (`grpc-encoding`).
fn request_encoding(headers: &HeaderMap) -> Result<bool, Status> {
    match headers.get("grpc-encoding").map(HeaderValue::as_bytes) {
        None | Some(b"identity") => Ok(false),
        Some(b"gzip") => Ok(true),
        Some(other) => Err(Status::unimplemented(format!(
            "grpc-encoding `{}` is not supported: send gzip or identity",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// Reads the one message of a unary call: its compressed flag and bytes,
/// kept as the frames they arrived in (the decoder reads across them).
///
/// Nothing is reserved for the declared length: bytes are reserved as they
/// arrive (a declared length over `max` is refused at once). A frame of at
/// least [`MIN_KEPT_FRAME`] bytes is kept as it is; smaller ones, and any
/// beyond [`MAX_PIECES`], are copied together into one buffer, so that
/// neither bookkeeping nor the transport's read buffers that a frame keeps
/// alive can grow much beyond the bytes received.
async fn read_message(
    mut body: tonic::body::Body,
    max: usize,
    reserve: &mut Reserve<'_>,
) -> Result<(bool, Chunks), Status> {
    let mut message = Chunks::new();
    let mut small = BytesMut::new();
    let mut received = 0usize;
    let mut declared: Option<(bool, usize)> = None;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Status::cancelled(format!("cannot read the request: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        reserve(data.len())?;
        received += data.len();
        if data.len() >= MIN_KEPT_FRAME && message.pieces() + 2 <= MAX_PIECES {
            if !small.is_empty() {
                message.push(small.split().freeze());
            }
            message.push(data);
        } else {
            // Each new buffer of copies is reserved whole: the old one may
            // still be held by a piece cut from it.
            let spare = small.capacity() - small.len();
            small.extend_from_slice(&data);
            if data.len() > spare {
                reserve(small.capacity())?;
            }
        }
        if declared.is_none() && received >= PREFIX_LEN {
            let mut prefix = [0u8; PREFIX_LEN];
            let n = message.copy_at(0, &mut prefix);
            prefix[n..].copy_from_slice(&small[..PREFIX_LEN - n]);
            let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
            if len > max {
                return Err(Status::resource_exhausted(format!(
                    "request of {len} bytes exceeds max_recv_msg_size_mib ({} MiB)",
                    max / (1024 * 1024)
                )));
            }
            declared = Some((prefix[0] != 0, len));
        }
        if let Some((_, len)) = declared
            && received > PREFIX_LEN + len
        {
            return Err(Status::invalid_argument(
                "more than one message in a unary call",
            ));
        }
    }
    let Some((compressed, len)) = declared else {
        return Err(Status::invalid_argument(if received == 0 {
            "the request has no message"
        } else {
            "the request ended inside the gRPC message prefix"
        }));
    };
    if received < PREFIX_LEN + len {
        return Err(Status::invalid_argument(format!(
            "the request ended after {} of the {len} bytes its message declares",
            received - PREFIX_LEN
        )));
    }
    if !small.is_empty() {
        message.push(small.freeze());
    }
    message.advance(PREFIX_LEN);
    Ok((compressed, message))
}

/// A successful unary answer: the message, then `grpc-status: 0`.
fn grpc_response(message: &ExportLogsServiceResponse) -> http::Response<tonic::body::Body> {
    let encoded = prost::Message::encode_to_vec(message);
    let mut data = BytesMut::with_capacity(PREFIX_LEN + encoded.len());
    data.put_u8(0);
    data.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    data.extend_from_slice(&encoded);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, Infallible>(http_body::Frame::data(data.freeze())),
        Ok(http_body::Frame::trailers(trailers)),
    ];
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// The gRPC status for a rejected request: bad data is INVALID_ARGUMENT
/// (never retried by OTLP clients), a full or failing pipeline UNAVAILABLE
/// (retried), with a `google.rpc.RetryInfo` when the pipeline gave a hint.
fn rejection_status(rejection: Rejection) -> Status {
    match rejection {
        Rejection::Invalid(message) => Status::invalid_argument(message),
        Rejection::Pipeline(PipelineError::Permanent { message }) => {
            Status::invalid_argument(message)
        }
        Rejection::Pipeline(
            PipelineError::Backpressure {
                message,
                retry_after,
            }
            | PipelineError::Retryable {
                message,
                retry_after,
            },
        ) => match retry_after {
            None => Status::unavailable(message),
            Some(after) => {
                let details = RpcStatus {
                    code: Code::Unavailable as i32,
                    message: message.clone(),
                    details: vec![RetryInfo::packed(after)],
                };
                Status::with_details(
                    Code::Unavailable,
                    message,
                    prost::Message::encode_to_vec(&details).into(),
                )
            }
        },
    }
}
