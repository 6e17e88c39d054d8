//! [`OtlpHttpSender`]: POSTs one batch; the exporter helper around it queues and retries.

use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use async_trait::async_trait;
use auditcol_core::auth::ClientAuthenticator;
use auditcol_core::component::StartError;
use auditcol_core::error::error_chain;
use auditcol_core::exporterhelper::{BatchSender, SendError};
use auditcol_core::httpclient;
use auditcol_core::otlp_response::{RejectedRecords, partial_success_json, partial_success_proto};
use auditcol_core::{LogBatch, PipelineError};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use crate::config::{Compression, Encoding, OtlpHttpExporterConfig, TlsSettings};
use crate::status::error_for;

/// At most this much of an answer is read: an `ExportLogsServiceResponse`
/// or an error status is far smaller, and a misbehaving server must not make
/// the exporter buffer without bound.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Sends each batch as one OTLP/HTTP `ExportLogsServiceRequest`.
///
/// The batch is encoded straight from its wire form
/// ([`LogBatch::encode_protobuf_into`] or [`LogBatch::write_otlp_json`]):
/// records leave exactly as they arrived. The HTTP client (connection pool,
/// TLS roots) is built at start, so building the exporter touches no file.
pub struct OtlpHttpSender {
    /// The exporter id, for messages.
    id: String,
    url: String,
    encoding: Encoding,
    compression: Compression,
    headers: HeaderMap,
    tls: TlsSettings,
    /// `auth`: headers asked for on every request (a token may rotate).
    auth: Option<Arc<dyn ClientAuthenticator>>,
    client: OnceLock<reqwest::Client>,
    /// Records the server rejected for good in partial successes.
    rejected: RejectedRecords,
}

impl OtlpHttpSender {
    /// A sender for a validated `config`.
    pub fn new(id: impl Into<String>, config: &OtlpHttpExporterConfig) -> Self {
        let headers = httpclient::header_map(&config.headers);
        Self {
            id: id.into(),
            url: config.logs_url().unwrap_or_default(),
            encoding: config.encoding,
            compression: config.compression,
            headers,
            tls: config.tls.clone(),
            auth: None,
            client: OnceLock::new(),
            rejected: RejectedRecords::default(),
        }
    }

    /// Sends the credentials of `auth` (the client side of an authenticator
    /// extension) with every request.
    pub fn with_auth(mut self, auth: Option<Arc<dyn ClientAuthenticator>>) -> Self {
        self.auth = auth;
        self
    }

    /// Records the server rejected in partial successes so far.
    pub fn rejected_records(&self) -> u64 {
        self.rejected.get()
    }

    fn build_client(&self) -> Result<reqwest::Client, String> {
        httpclient::build(httpclient::client_builder(self.headers.clone(), &self.tls)?)
    }

    /// The request body, encoded and compressed as configured.
    fn body(&self, batch: &LogBatch) -> Result<Vec<u8>, PipelineError> {
        let mut encoded = Vec::new();
        match self.encoding {
            Encoding::Proto => batch.encode_protobuf_into(&mut encoded),
            Encoding::Json => batch.write_otlp_json(&mut encoded).map_err(|e| {
                PipelineError::permanent(format!(
                    "exporter {}: cannot write the batch as OTLP/JSON: {e}",
                    self.id
                ))
            })?,
        }
        match self.compression {
            Compression::None => Ok(encoded),
            Compression::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(encoded.len() / 4),
                    flate2::Compression::fast(),
                );
                gz.write_all(&encoded)
                    .and_then(|()| gz.finish())
                    .map_err(|e| {
                        PipelineError::permanent(format!(
                            "exporter {}: cannot gzip the batch: {e}",
                            self.id
                        ))
                    })
            }
        }
    }
}

impl OtlpHttpSender {
    /// Sends `batch` once, as one request: all of it is delivered or none.
    pub async fn send_batch(&self, batch: &LogBatch) -> Result<(), PipelineError> {
        let Some(client) = self.client.get() else {
            return Err(PipelineError::retryable(format!(
                "exporter {}: not started",
                self.id
            )));
        };
        let body = self.body(batch)?;
        let content_type = match self.encoding {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        };
        let mut request = client
            .post(&self.url)
            .header(CONTENT_TYPE, content_type)
            .body(body);
        if self.compression == Compression::Gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let what = || format!("exporter {}: {}", self.id, self.url);
        let request = httpclient::authenticate(request, self.auth.as_ref())
            .map_err(|e| PipelineError::retryable(format!("{}: {e}", what())))?;
        let response = request
            .send()
            .await
            .map_err(|e| PipelineError::retryable(format!("{}: {}", what(), error_chain(&e))))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = httpclient::read_body_limited(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| {
                PipelineError::retryable(format!(
                    "{}: cannot read the answer: {}",
                    what(),
                    error_chain(&e)
                ))
            })?;
        if status.is_success() {
            let partial = match self.encoding {
                Encoding::Proto => partial_success_proto(&body),
                Encoding::Json => partial_success_json(&body),
            };
            self.rejected.note(&self.id, &partial, batch);
            return Ok(());
        }
        Err(error_for(
            status.as_u16(),
            retry_after.as_deref(),
            &body,
            &what(),
            SystemTime::now(),
        ))
    }
}

#[async_trait]
impl BatchSender for OtlpHttpSender {
    async fn start(&self) -> Result<(), StartError> {
        let client = self
            .build_client()
            .map_err(|e| StartError(format!("exporter {}: {e}", self.id)))?;
        // A second start keeps the first client.
        let _ = self.client.set(client);
        Ok(())
    }

    async fn send(&self, batch: &LogBatch) -> Result<(), SendError> {
        Ok(self.send_batch(batch).await?)
    }
}
