//! OTLP/gRPC: the generated `LogsService` server, plus a thin wrapper that
//! gives tonic's own decoding failures the status codes OTLP clients expect.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use auditcol_core::{LogBatch, PipelineError};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};

use crate::ingest::{Ingest, Rejection, RetryInfo, RpcStatus};

/// Serves OTLP/gRPC on `listener` until `shutdown` is cancelled, then lets
/// requests in flight finish.
pub(crate) async fn serve(
    listener: TcpListener,
    ingest: Arc<Ingest>,
    max_recv_msg_size: usize,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let service = LogsServiceServer::new(GrpcLogs { ingest })
        .max_decoding_message_size(max_recv_msg_size)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
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

/// The `LogsService` implementation.
struct GrpcLogs {
    ingest: Arc<Ingest>,
}

#[async_trait]
impl LogsService for GrpcLogs {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, Status> {
        let batch = LogBatch::from_request(request.into_inner());
        self.ingest
            .accept(batch, "grpc")
            .await
            .map_err(rejection_status)?;
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
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
    const NAME: &'static str = <LogsServiceServer<GrpcLogs> as NamedService>::NAME;
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
