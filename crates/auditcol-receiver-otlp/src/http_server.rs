//! OTLP/HTTP: `POST /v1/logs` with a protobuf or JSON body, optionally
//! gzipped. Errors answer a `google.rpc.Status` in the request's encoding,
//! as the Collector does.

use std::sync::Arc;

use auditcol_core::auth::RequestAuth;
use auditcol_core::batch::Chunks;
use auditcol_core::receiverhelper::HttpRefusal;
use auditcol_core::receiverhelper::{ConnectionLimit, client_addr, serve_http};
use auditcol_core::telemetry::RefusalReason;
use auditcol_core::{Decoded, LogBatch};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::header::{
    ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::compression::{GunzipError, gunzip};
use crate::ingest::{Accepted, Ingest, Rejection, RpcStatus};

/// The path OTLP/HTTP log exporters post to.
pub(crate) const LOGS_PATH: &str = "/v1/logs";

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// `google.rpc.Code` values used in error bodies.
const CODE_INVALID_ARGUMENT: i32 = 3;
const CODE_RESOURCE_EXHAUSTED: i32 = 8;
const CODE_UNAVAILABLE: i32 = 14;

struct HttpState {
    ingest: Arc<Ingest>,
    max_body: usize,
    /// Checked on the request's headers before the body is read.
    auth: Option<RequestAuth>,
}

/// Serves OTLP/HTTP on `listener` until `shutdown` is cancelled, then lets
/// requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    limits: Limits,
    ingest: Arc<Ingest>,
    auth: Option<RequestAuth>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let max_body = limits.max_body;
    let router = Router::new()
        .route(LOGS_PATH, post(export_logs).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(Arc::new(HttpState {
            ingest,
            max_body,
            auth,
        }));
    serve_http(
        listener,
        limits.connections,
        router,
        limits.timeouts,
        limits.tls,
        shutdown,
    )
    .await;
    Ok(())
}

/// What one OTLP/HTTP listener allows.
pub(crate) struct Limits {
    /// Largest request body, as sent and decompressed.
    pub(crate) max_body: usize,
    /// Most connections open at once.
    pub(crate) connections: ConnectionLimit,
    /// Slow and idle clients' deadlines.
    pub(crate) timeouts: auditcol_core::receiverhelper::HttpTimeouts,
    /// TLS, when configured.
    pub(crate) tls: Option<Arc<auditcol_core::tls::ServerTls>>,
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("404 not found: OTLP logs are accepted at POST {LOGS_PATH}"),
    )
        .into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(ALLOW, HeaderValue::from_static("POST"))],
        format!("405 method not allowed: send POST {LOGS_PATH}"),
    )
        .into_response()
}

/// The encoding of a request body, and of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn from_headers(headers: &HeaderMap) -> Result<Self, String> {
        let raw = headers
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        // Parameters such as `; charset=utf-8` do not change the format.
        let media_type = raw.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case(PROTOBUF) {
            Ok(Self::Protobuf)
        } else if media_type.eq_ignore_ascii_case(JSON) {
            Ok(Self::Json)
        } else {
            Err(raw)
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Protobuf => PROTOBUF,
            Self::Json => JSON,
        })
    }
}

/// An error answer: HTTP status, `google.rpc.Status` and maybe `Retry-After`.
struct Failure {
    http: StatusCode,
    code: i32,
    message: String,
    retry_after: Option<u64>,
}

impl Failure {
    fn new(http: StatusCode, code: i32, message: impl Into<String>) -> Self {
        Self {
            http,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, CODE_INVALID_ARGUMENT, message)
    }

    fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            CODE_RESOURCE_EXHAUSTED,
            message,
        )
    }

    fn into_response(self, format: Format) -> Response {
        let body = match format {
            Format::Protobuf => prost::Message::encode_to_vec(&RpcStatus {
                code: self.code,
                message: self.message,
                details: Vec::new(),
            }),
            Format::Json => {
                serde_json::to_vec(&serde_json::json!({"code": self.code, "message": self.message}))
                    .expect("serialising a JSON value into memory cannot fail")
            }
        };
        let mut response = (self.http, body).into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, format.content_type());
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid(message) => Self::bad_request(message),
            Rejection::Pipeline(error) => {
                let refusal = HttpRefusal::of(&error);
                let (http, code) = if refusal.status == 400 {
                    (StatusCode::BAD_REQUEST, CODE_INVALID_ARGUMENT)
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, CODE_UNAVAILABLE)
                };
                Self {
                    retry_after: refusal.retry_after_secs,
                    ..Self::new(http, code, error.message())
                }
            }
        }
    }
}

async fn export_logs(State(state): State<Arc<HttpState>>, request: Request) -> Response {
    let client = client_addr(request.extensions());
    if let Some(auth) = &state.auth
        && let Err(refused) = authenticate(auth, request.headers(), request.extensions()).await
    {
        return refused;
    }
    let format = match Format::from_headers(request.headers()) {
        Ok(format) => format,
        Err(content_type) => {
            let shown = if content_type.is_empty() {
                "no Content-Type".to_owned()
            } else {
                format!("Content-Type `{content_type}`")
            };
            let message = format!("415 unsupported media type: {shown}; send {PROTOBUF} or {JSON}");
            state
                .ingest
                .refuse("http", RefusalReason::Unsupported, client, &message);
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response();
        }
    };
    // Admitted by the memory limiters before the body is read; what the
    // request costs is reserved as it is read and until the pipeline answered.
    let mut reservation = match state.ingest.admit("http", client) {
        Ok(reservation) => reservation,
        Err(e) => return Failure::from(Rejection::Pipeline(e)).into_response(format),
    };
    let mut reserve = |bytes: usize| {
        state
            .ingest
            .reserve(&mut reservation, bytes, "http", client)
            .map_err(|e| Failure::from(Rejection::Pipeline(e)))
    };
    let decoded = match receive(&state, request, format, &mut reserve).await {
        Ok(decoded) => decoded,
        Err(failure) => {
            let reason = match failure.http {
                StatusCode::PAYLOAD_TOO_LARGE => Some(RefusalReason::TooLarge),
                StatusCode::UNSUPPORTED_MEDIA_TYPE => Some(RefusalReason::Unsupported),
                // Refused by the memory limiters: counted then.
                StatusCode::SERVICE_UNAVAILABLE => None,
                _ => Some(RefusalReason::Invalid),
            };
            if let Some(reason) = reason {
                state
                    .ingest
                    .refuse("http", reason, client, &failure.message);
            }
            return failure.into_response(format);
        }
    };
    match state.ingest.accept(decoded, "http", client).await {
        Ok(accepted) => success(format, accepted),
        Err(rejection) => Failure::from(rejection).into_response(format),
    }
}

/// Lets the request in, or answers 401 with `WWW-Authenticate` (503 when
/// the credentials cannot be checked now) and a `google.rpc.Status` in the
/// request's encoding (JSON when it has none we speak), before its body is read.
async fn authenticate(
    auth: &RequestAuth,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Result<(), Response> {
    let Err(refused) = auth.check(headers, client_addr(extensions)).await else {
        return Ok(());
    };
    let format = Format::from_headers(headers).unwrap_or(Format::Json);
    let mut response = Failure {
        retry_after: refused.retry_after_secs(),
        ..Failure::new(
            StatusCode::from_u16(refused.http_status()).unwrap_or(StatusCode::UNAUTHORIZED),
            refused.grpc_code(),
            refused.to_string(),
        )
    }
    .into_response(format);
    if refused.http_status() == 401 {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, auth.challenge());
    }
    Err(response)
}

/// What a request reserves with the memory limiters as it grows.
type Reserve<'a> = dyn FnMut(usize) -> Result<(), Failure> + Send + 'a;

/// The request's body, read, decompressed and decoded; `reserve` is told
/// of the body (its declared length before it is read), of what
/// decompressing and transcoding allocate, and of the cost of decoding
/// before it starts.
async fn receive(
    state: &HttpState,
    request: Request,
    format: Format,
    reserve: &mut Reserve<'_>,
) -> Result<Decoded, Failure> {
    let gzip = is_gzip(request.headers())?;
    let body = read_body(request, state.max_body, reserve).await?;
    // Records stay slices of the body: only a compressed one needs a new buffer.
    let body = if gzip {
        match gunzip(&body[..], state.max_body) {
            Ok(plain) => {
                reserve(plain.len())?;
                bytes::Bytes::from(plain)
            }
            Err(GunzipError::TooLarge) => {
                return Err(Failure::too_large(format!(
                    "decompressed request body exceeds max_request_body_size ({} bytes)",
                    state.max_body
                )));
            }
            Err(GunzipError::Invalid(e)) => {
                return Err(Failure::bad_request(format!("invalid gzip body: {e}")));
            }
        }
    } else {
        body
    };
    let protobuf = match format {
        Format::Protobuf => body,
        Format::Json => {
            // The transcoded request is at most as long as the JSON.
            reserve(body.len())?;
            LogBatch::transcode_json(&body).map_err(|e| Failure::bad_request(e.message))?
        }
    };
    let protobuf = Chunks::from(protobuf);
    reserve(LogBatch::decode_cost(&protobuf))?;
    LogBatch::decode_protobuf_chunks(&protobuf).map_err(|e| Failure::bad_request(e.message))
}

/// True for `Content-Encoding: gzip`; false for none or `identity`.
fn is_gzip(headers: &HeaderMap) -> Result<bool, Failure> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(false);
    };
    let encoding = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        Ok(false)
    } else if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
        Ok(true)
    } else {
        Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            CODE_INVALID_ARGUMENT,
            format!("unsupported Content-Encoding `{encoding}`: send gzip or no Content-Encoding"),
        ))
    }
}

/// Reads at most `max` bytes of body; refuses a declared larger one before
/// reading anything.
async fn read_body(
    request: Request,
    max: usize,
    reserve: &mut Reserve<'_>,
) -> Result<bytes::Bytes, Failure> {
    let too_large = || {
        Failure::too_large(format!(
            "request body exceeds max_request_body_size ({max} bytes)"
        ))
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    // A declared length is reserved before reading (the server holds the
    // body to it); a chunked body once read, at most `max`.
    if let Some(len) = declared {
        reserve(len as usize)?;
    }
    let body: Body = request.into_body();
    match Limited::new(body, max).collect().await {
        Ok(collected) => {
            let body = collected.to_bytes();
            if declared.is_none() {
                reserve(body.len())?;
            }
            Ok(body)
        }
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Failure::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// `ExportLogsServiceResponse` in the request's encoding, with a
/// `partialSuccess` when invalid records were left out (its 64-bit count as
/// a string in JSON, as the proto3 JSON mapping writes it).
fn success(format: Format, accepted: Accepted) -> Response {
    let body = match format {
        Format::Protobuf => prost::Message::encode_to_vec(&accepted.response()),
        Format::Json if accepted.rejected == 0 => b"{}".to_vec(),
        Format::Json => serde_json::to_vec(&serde_json::json!({
            "partialSuccess": {
                "rejectedLogRecords": accepted.rejected.to_string(),
                "errorMessage": accepted.message,
            }
        }))
        .expect("serialising a JSON value into memory cannot fail"),
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, format.content_type());
    response
}
