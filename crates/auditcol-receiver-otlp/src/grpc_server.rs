//! OTLP/gRPC: the `LogsService/Export` method over tonic's gRPC framing,
//! with a codec that hands the request to the pipeline as the bytes it
//! arrived in (no decode into generated structs), plus a thin wrapper that
//! gives tonic's own decoding failures the status codes OTLP clients expect.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use auditcol_core::{LogBatch, PipelineError};
use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

use crate::ingest::{Ingest, Rejection, RetryInfo, RpcStatus};

/// The gRPC service name of OTLP log export.
const SERVICE_NAME: &str = "opentelemetry.proto.collector.logs.v1.LogsService";
/// The path of its one method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// Serves OTLP/gRPC on `listener` until `shutdown` is cancelled, then lets
/// requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    max_recv_msg_size: usize,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let service = LogsGrpc {
        ingest,
        max_recv_msg_size,
    };
    tonic::transport::Server::builder()
        .add_service(OtlpStatusCodes {
            inner: service,
            max_recv_msg_size,
        })
        // Without TCP_NODELAY a small response waits for the client's delayed
        // ACK: ~40 ms added to every request of a lone synchronous client.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await
}

/// The `LogsService` server: one unary method, `Export`.
#[derive(Clone)]
struct LogsGrpc {
    ingest: Arc<Ingest>,
    max_recv_msg_size: usize,
}

impl tower::Service<http::Request<tonic::body::Body>> for LogsGrpc {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!(
                "unknown method {}: this server implements {EXPORT_PATH}",
                request.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let export = ExportMethod {
            ingest: self.ingest.clone(),
        };
        let mut grpc = Grpc::new(RequestBytesCodec)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(self.max_recv_msg_size);
        Box::pin(async move { Ok(grpc.unary(export, request).await) })
    }
}

/// The `Export` method: the request body goes to the pipeline as bytes.
struct ExportMethod {
    ingest: Arc<Ingest>,
}

impl UnaryService<Bytes> for ExportMethod {
    type Response = ExportLogsServiceResponse;
    type Future = BoxFuture<Result<tonic::Response<Self::Response>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingest = self.ingest.clone();
        Box::pin(async move {
            let decoded = LogBatch::decode_protobuf(request.into_inner()).map_err(|e| {
                ingest.log_undecodable("grpc", &e.message);
                Status::invalid_argument(e.message)
            })?;
            let accepted = ingest
                .accept(decoded, "grpc")
                .await
                .map_err(rejection_status)?;
            Ok(tonic::Response::new(accepted.response()))
        })
    }
}

/// Decodes nothing: the message is taken out of tonic's buffer as one
/// `Bytes` (a split of the buffer, not a copy). Responses are prost-encoded.
#[derive(Debug, Clone, Copy, Default)]
struct RequestBytesCodec;

impl Codec for RequestBytesCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RequestBytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestBytesDecoder
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportLogsServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&prost::Message::encode_to_vec(&item));
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct RequestBytesDecoder;

impl Decoder for RequestBytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
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

/// Wraps the generated server to rewrite the statuses tonic produces while
/// decoding a request, before our code sees it:
///
/// - a message over the limit is OUT_OF_RANGE in tonic (`codec/decode.rs`:
///   "Error, decoded message length too large"); OTLP and the Collector say
///   RESOURCE_EXHAUSTED;
/// - undecodable protobuf and corrupt gzip are INTERNAL in tonic; they are
///   the client's fault, so INVALID_ARGUMENT (not retried).
#[derive(Clone)]
struct OtlpStatusCodes<S> {
    inner: S,
    max_recv_msg_size: usize,
}

impl<S> NamedService for OtlpStatusCodes<S> {
    const NAME: &'static str = SERVICE_NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower::Service<http::Request<tonic::body::Body>> for OtlpStatusCodes<S>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let response = self.inner.call(request);
        let limit_mib = self.max_recv_msg_size / (1024 * 1024);
        Box::pin(async move {
            let response = response.await?;
            Ok(rewrite_decoding_status(response, limit_mib))
        })
    }
}

/// Rewrites the trailers-only error responses described on
/// [`OtlpStatusCodes`]; every other response passes untouched. Tonic puts
/// the `Status` of such a response in its extensions.
fn rewrite_decoding_status(
    response: http::Response<tonic::body::Body>,
    limit_mib: usize,
) -> http::Response<tonic::body::Body> {
    let Some(status) = response.extensions().get::<Status>() else {
        return response;
    };
    let message = status.message();
    let replacement = match status.code() {
        Code::OutOfRange if message.starts_with("Error, decoded message length too large") => {
            let size = found_bytes(message)
                .map(|n| format!("request of {n} bytes"))
                .unwrap_or_else(|| "request".to_owned());
            Status::resource_exhausted(format!(
                "{size} exceeds max_recv_msg_size_mib ({limit_mib} MiB)"
            ))
        }
        Code::ResourceExhausted if message.starts_with("Error decompressing: size limit") => {
            Status::resource_exhausted(format!(
                "decompressed request exceeds max_recv_msg_size_mib ({limit_mib} MiB)"
            ))
        }
        Code::Internal if message.starts_with("failed to decode Protobuf message") => {
            Status::invalid_argument(format!("invalid OTLP protobuf: {message}"))
        }
        Code::Internal if message.starts_with("Error decompressing") => {
            Status::invalid_argument(format!("invalid compressed request: {message}"))
        }
        _ => return response,
    };
    replacement.into_http()
}

/// The `N` of tonic's "found N bytes".
fn found_bytes(message: &str) -> Option<u64> {
    let rest = &message[message.find("found ")? + "found ".len()..];
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_read_from_tonics_message() {
        assert_eq!(
            found_bytes(
                "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes"
            ),
            Some(5_000_000)
        );
        assert_eq!(found_bytes("something else"), None);
    }
}
