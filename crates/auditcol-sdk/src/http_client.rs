//! The HTTP client under the official OTLP/HTTP exporter.
//!
//! opentelemetry-otlp keeps only the status code of a failed export and
//! logs a partial success instead of returning it. This client sees the
//! whole answer: it notes the collector's message (a `google.rpc.Status`)
//! and any rejected records in the [`DeliveryLedger`], so that a flush can
//! say why events were not delivered. Requests run on the sender's own
//! Tokio runtime, so the batch processor's plain thread can wait for them.

use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, ResponseBodyTooLarge};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;

use crate::ledger::DeliveryLedger;

/// Responses larger than this are not read (an OTLP answer is a few bytes).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// reqwest on the sender's runtime, noting what the collector answered.
#[derive(Debug)]
pub(crate) struct LedgerHttpClient {
    pub client: reqwest::Client,
    pub runtime: tokio::runtime::Handle,
    pub ledger: Arc<DeliveryLedger>,
}

#[async_trait::async_trait]
impl HttpClient for LedgerHttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let url = request.uri().to_string();
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let exchange = self
            .runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let mut head = http::Response::builder().status(response.status());
                if let Some(headers) = head.headers_mut() {
                    headers.extend(response.headers().clone());
                }
                let body = read_limited(response).await?;
                head.body(body)
                    .map_err(|e| Exchange::Failed(Box::new(e) as HttpError))
            })
            .await;
        match exchange {
            Ok(Ok(response)) => {
                self.note(&response);
                Ok(response)
            }
            Ok(Err(Exchange::Failed(error))) => {
                self.ledger
                    .note_transport_failure(format!("cannot send to {url}: {}", chain(&*error)));
                Err(error)
            }
            Ok(Err(Exchange::TooLarge)) => Err(Box::new(ResponseBodyTooLarge::new())),
            Err(join) => {
                self.ledger
                    .note_transport_failure(format!("cannot send to {url}: {join}"));
                Err(Box::new(join))
            }
        }
    }
}

impl LedgerHttpClient {
    fn note(&self, response: &http::Response<Bytes>) {
        let status = response.status();
        let json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if status.is_success() {
            if let Some((rejected, message)) = partial_success(response.body(), json) {
                self.ledger.note_rejected(rejected, message);
            }
        } else {
            let reason = status_message(response.body(), json);
            self.ledger.note_transport_failure(match reason {
                Some(message) => format!("HTTP {status}: {message}"),
                None => format!("HTTP {status}"),
            });
        }
    }
}

enum Exchange {
    Failed(HttpError),
    TooLarge,
}

impl From<reqwest::Error> for Exchange {
    fn from(error: reqwest::Error) -> Self {
        Exchange::Failed(Box::new(error))
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Bytes, Exchange> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Exchange::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// `error: cause: cause ...`, as one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `google.rpc.Status`, the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The message of an OTLP/HTTP error body; the text itself when it is not
/// a `google.rpc.Status` (a proxy's error page, say), shortened.
fn status_message(body: &[u8], json: bool) -> Option<String> {
    let message = if json {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned))
    } else {
        RpcStatus::decode(body).ok().map(|s| s.message)
    };
    match message {
        Some(m) if !m.is_empty() => Some(m),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            (!text.is_empty() && !text.contains('\0')).then(|| text.chars().take(300).collect())
        }
    }
}

/// `(rejected records, message)` of an export response with a partial
/// success that rejected something.
fn partial_success(body: &[u8], json: bool) -> Option<(u64, String)> {
    let (rejected, message) = if json {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let partial = value.get("partialSuccess")?;
        // int64 is a string in OTLP/JSON; accept a number too.
        let rejected = match partial.get("rejectedLogRecords") {
            Some(serde_json::Value::String(s)) => s.parse().ok()?,
            Some(n) => n.as_u64()?,
            None => 0,
        };
        let message = partial
            .get("errorMessage")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_owned();
        (rejected, message)
    } else {
        let partial = ExportLogsServiceResponse::decode(body)
            .ok()?
            .partial_success?;
        (
            u64::try_from(partial.rejected_log_records).unwrap_or(0),
            partial.error_message,
        )
    };
    (rejected > 0).then_some((rejected, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;

    #[test]
    fn the_message_of_an_error_status_is_read_in_both_encodings() {
        let proto = RpcStatus {
            code: 3,
            message: "values nest more than 32 levels deep".into(),
        }
        .encode_to_vec();
        assert_eq!(
            status_message(&proto, false).as_deref(),
            Some("values nest more than 32 levels deep")
        );
        assert_eq!(
            status_message(br#"{"code":3,"message":"bad record"}"#, true).as_deref(),
            Some("bad record")
        );
    }

    #[test]
    fn an_error_body_that_is_not_a_status_is_quoted() {
        assert_eq!(
            status_message(b"upstream unavailable\n", true).as_deref(),
            Some("upstream unavailable")
        );
        assert_eq!(status_message(b"", false), None);
    }

    #[test]
    fn a_partial_success_is_read_in_both_encodings() {
        let proto = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "logRecords[1]: bad".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            partial_success(&proto, false),
            Some((2, "logRecords[1]: bad".into()))
        );
        assert_eq!(
            partial_success(
                br#"{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"x"}}"#,
                true
            ),
            Some((1, "x".into()))
        );
    }

    #[test]
    fn a_full_success_rejects_nothing() {
        assert_eq!(partial_success(&[], false), None);
        assert_eq!(partial_success(b"{}", true), None);
        assert_eq!(
            partial_success(br#"{"partialSuccess":{}}"#, true),
            None,
            "an empty partial success is a success"
        );
    }
}
