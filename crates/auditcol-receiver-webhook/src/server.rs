//! The HTTP server: `POST <path>` with a JSON or NDJSON body, checked in the
//! order that does the least work for a bad request — path, method, media
//! type, size, signature, events — then handed to the pipeline. Every answer
//! is JSON: `{"accepted": N}` (and `"ignored": M` when entries were not
//! audit events), or `{"error": "..."}`.

use std::sync::Arc;

use auditcol_core::auth::RequestAuth;
use auditcol_core::memorylimiter::{Admission, Reservation};
use auditcol_core::receiverhelper::HttpRefusal;
use auditcol_core::receiverhelper::{ConnectionLimit, client_addr, serve_http};
use auditcol_core::telemetry::{ReceiverTelemetry, RefusalReason};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{
    ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::body::{BodyKind, JSON, NDJSON};
use crate::config::Format;
use crate::decode::decode_request;
use crate::ingest::{Ingest, Rejection, decode_cost};
use crate::signature::SignatureVerifier;

/// What every request needs.
pub(crate) struct Endpoint {
    pub(crate) path: String,
    pub(crate) format: Format,
    pub(crate) verifier: Option<SignatureVerifier>,
    pub(crate) max_body: usize,
    pub(crate) ingest: Ingest,
    /// Counts and logs what is accepted, refused and dropped.
    pub(crate) telemetry: Arc<ReceiverTelemetry>,
    /// `auth`: checked on the headers before the body is read.
    pub(crate) auth: Option<RequestAuth>,
    /// The memory limiters, asked before the body is read.
    pub(crate) admission: Admission,
}

/// Serves `endpoint` on `listener` until `shutdown` is cancelled, then lets
/// requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    connections: ConnectionLimit,
    timeouts: auditcol_core::receiverhelper::HttpTimeouts,
    tls: Option<Arc<auditcol_core::tls::ServerTls>>,
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // One handler for every path and method: the configured path is matched
    // literally, so no character in it can mean a route pattern.
    let router = Router::new().fallback(handle).with_state(endpoint);
    serve_http(listener, connections, router, timeouts, tls, shutdown).await;
    Ok(())
}

/// An error answer.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
    allow: bool,
    /// Why the request counts as refused (`None`: not a request for this
    /// receiver, such as another path), and how many events it carried.
    refusal: Option<(RefusalReason, usize)>,
    /// `WWW-Authenticate`, on a 401 from the authenticator.
    challenge: Option<HeaderValue>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            allow: false,
            refusal: None,
            challenge: None,
        }
    }

    /// A refused request: counted under `reason`.
    fn refused(status: StatusCode, reason: RefusalReason, message: impl Into<String>) -> Self {
        Self {
            refusal: Some((reason, 0)),
            ..Self::new(status, message)
        }
    }

    fn into_response(self) -> Response {
        let mut response = json_response(self.status, serde_json::json!({"error": self.message}));
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, secs.into());
        }
        if self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// The HTTP answer to a refusal: bad data 400, never retried; a full or
/// failing pipeline 503 with `Retry-After`, so Flipt's and other clients'
/// retries come back later. (The OTLP receiver's mapping, for this JSON
/// error body.)
impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid { message, records } => Self {
                refusal: Some((RefusalReason::Invalid, records)),
                ..Self::new(StatusCode::BAD_REQUEST, message)
            },
            Rejection::Pipeline { error, records } => {
                let refusal = HttpRefusal::of(&error);
                Self {
                    retry_after: refusal.retry_after_secs,
                    refusal: Some((RefusalReason::of(&error), records)),
                    ..Self::new(
                        StatusCode::from_u16(refusal.status)
                            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                        error.message(),
                    )
                }
            }
        }
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

async fn handle(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    let client = client_addr(request.extensions());
    match receive(&endpoint, request).await {
        Ok((accepted, ignored)) => {
            endpoint.telemetry.accepted(accepted);
            endpoint.telemetry.dropped_non_audit(ignored, client);
            let mut body = serde_json::json!({ "accepted": accepted });
            if ignored > 0 {
                body["ignored"] = ignored.into();
            }
            json_response(StatusCode::OK, body)
        }
        Err(failure) => {
            if let Some((reason, records)) = failure.refusal {
                endpoint
                    .telemetry
                    .refused_request(reason, records, client, &failure.message);
            }
            failure.into_response()
        }
    }
}

/// Returns (events accepted, entries ignored).
async fn receive(endpoint: &Endpoint, request: Request) -> Result<(usize, usize), Failure> {
    if request.uri().path() != endpoint.path {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!(
                "nothing at {}: this receiver takes audit events at POST {}",
                request.uri().path(),
                endpoint.path
            ),
        ));
    }
    if request.method() != Method::POST {
        return Err(Failure {
            allow: true,
            ..Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "method {} not allowed: send POST {}",
                    request.method(),
                    endpoint.path
                ),
            )
        });
    }
    if let Some(auth) = &endpoint.auth {
        auth.check(request.headers(), client_addr(request.extensions()))
            .await
            // Counted and logged by `check` (reason `unauthenticated`).
            .map_err(|refused| Failure {
                retry_after: refused.retry_after_secs(),
                challenge: (refused.http_status() == 401).then(|| auth.challenge()),
                ..Failure::new(
                    StatusCode::from_u16(refused.http_status()).unwrap_or(StatusCode::UNAUTHORIZED),
                    refused.to_string(),
                )
            })?;
    }
    let kind = body_kind(request.headers())?;
    // Admitted by the memory limiters before the body is read; the body and
    // what decoding it may hold are reserved until the pipeline answered.
    let mut reservation = endpoint.admission.admit().map_err(memory_refusal)?;
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, endpoint.max_body, &mut reservation).await?;
    reservation
        .grow(decode_cost(body.len()))
        .map_err(memory_refusal)?;
    if let Some(verifier) = &endpoint.verifier {
        // Worth an operator's attention (logged at WARN): a forged request,
        // or a sender configured with another secret (then every event is refused).
        verifier.verify(&parts.headers, &body).map_err(|e| {
            Failure::refused(
                StatusCode::UNAUTHORIZED,
                RefusalReason::Signature,
                e.to_string(),
            )
        })?;
    }
    let decoded = decode_request(endpoint.format, kind, &body).map_err(|e| {
        Failure::refused(
            StatusCode::BAD_REQUEST,
            RefusalReason::Invalid,
            e.to_string(),
        )
    })?;
    let accepted = endpoint
        .ingest
        .accept(&decoded.events)
        .await
        .map_err(Failure::from)?;
    Ok((accepted, decoded.ignored))
}

/// A refusal by the memory limiters: 503 with `Retry-After`, counted as
/// backpressure.
fn memory_refusal(error: auditcol_core::PipelineError) -> Failure {
    Failure::from(Rejection::Pipeline { error, records: 0 })
}

/// The body's media type, from `Content-Type`; only identity encoding, as
/// signatures are over the bytes as sent.
fn body_kind(headers: &HeaderMap) -> Result<BodyKind, Failure> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let kind = BodyKind::from_content_type(&content_type).ok_or_else(|| {
        let shown = if content_type.is_empty() {
            "no Content-Type".to_owned()
        } else {
            format!("Content-Type `{content_type}`")
        };
        Failure::refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RefusalReason::Unsupported,
            format!("unsupported media type: {shown}; send {JSON} or {NDJSON}"),
        )
    })?;
    if let Some(encoding) = headers.get(CONTENT_ENCODING) {
        let encoding = String::from_utf8_lossy(encoding.as_bytes());
        let encoding = encoding.trim();
        if !(encoding.is_empty() || encoding.eq_ignore_ascii_case("identity")) {
            return Err(Failure::refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RefusalReason::Unsupported,
                format!("unsupported Content-Encoding `{encoding}`: send the body uncompressed"),
            ));
        }
    }
    Ok(kind)
}

/// Reads at most `max` bytes of body; refuses a declared larger one before
/// reading anything. (The OTLP receiver's rule.) The buffer is reserved
/// with the memory limiters before it grows: the declared length at once
/// (a body too large for the limiters is refused before it is read), a
/// chunked body as it arrives.
async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    max: usize,
    reservation: &mut Reservation,
) -> Result<bytes::Bytes, Failure> {
    let too_large = || {
        Failure::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            RefusalReason::TooLarge,
            format!("request body exceeds max_request_body_size ({max} bytes)"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    let declared = declared.map_or(0, |len| len as usize);
    reservation.grow(declared).map_err(memory_refusal)?;
    let mut buf = bytes::BytesMut::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failure::refused(
                StatusCode::BAD_REQUEST,
                RefusalReason::Invalid,
                format!("cannot read the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = buf.len() + data.len();
        if needed > max {
            return Err(too_large());
        }
        if needed > buf.capacity() {
            // Grows as a vector does (doubling), within `max`; the whole new
            // buffer is reserved, as the old one is held while it is copied.
            let capacity = needed.max(2 * buf.capacity()).min(max);
            reservation.grow(capacity).map_err(memory_refusal)?;
            buf.reserve(capacity - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}
