//! [`OtlpGrpcSender`]: one `LogsService/Export` call per batch; the exporter
//! helper around it queues and retries.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use auditcol_core::auth::ClientAuthenticator;
use auditcol_core::component::StartError;
use auditcol_core::error::error_chain;
use auditcol_core::exporterhelper::{BatchSender, SendError};
use auditcol_core::otlp_response::{RejectedRecords, partial_success_proto};
use auditcol_core::tls::{ALPN_GRPC, TlsClientSettings};
use auditcol_core::{LogBatch, PipelineError};
use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::config::{Compression, OtlpExporterConfig};
use crate::status::error_for;

/// The OTLP logs export method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// Sends each batch as one OTLP/gRPC `ExportLogsServiceRequest`.
///
/// The request is the batch's own protobuf encoding
/// ([`LogBatch::encode_protobuf_into`]) handed to tonic as bytes: the batch
/// is never decoded into generated structs, and records leave exactly as they
/// arrived. The channel is created at start and connects lazily (and
/// reconnects by itself), so a server that is down at start only makes the
/// first sends fail, retryably.
pub struct OtlpGrpcSender {
    /// The exporter id, for messages.
    id: String,
    endpoint: String,
    uri: String,
    /// TLS settings, when the connection uses TLS.
    tls: Option<TlsClientSettings>,
    compression: Compression,
    metadata: MetadataMap,
    /// `auth`: metadata asked for on every call (a token may rotate).
    auth: Option<Arc<dyn ClientAuthenticator>>,
    channel: OnceLock<Channel>,
    /// Records the server rejected for good in partial successes.
    rejected: RejectedRecords,
}

impl OtlpGrpcSender {
    /// A sender for a validated `config`.
    pub fn new(id: impl Into<String>, config: &OtlpExporterConfig) -> Self {
        let mut metadata = MetadataMap::new();
        for (name, value) in &config.headers {
            if let (Ok(key), Ok(value)) = (
                AsciiMetadataKey::from_bytes(name.as_bytes()),
                AsciiMetadataValue::try_from(value.as_str()),
            ) {
                metadata.insert(key, value);
            }
        }
        Self {
            id: id.into(),
            endpoint: config.endpoint.clone(),
            uri: config.uri(),
            tls: config.uses_tls().then(|| config.tls.clone()),
            compression: config.compression,
            metadata,
            auth: None,
            channel: OnceLock::new(),
            rejected: RejectedRecords::default(),
        }
    }

    /// Sends the credentials of `auth` (the client side of an authenticator
    /// extension) as metadata with every call.
    pub fn with_auth(mut self, auth: Option<Arc<dyn ClientAuthenticator>>) -> Self {
        self.auth = auth;
        self
    }

    /// The metadata of one call: `headers`, then the authenticator's, which
    /// replace entries of the same name.
    fn call_metadata(&self) -> Result<MetadataMap, String> {
        let Some(auth) = &self.auth else {
            return Ok(self.metadata.clone());
        };
        let mut headers = self.metadata.clone().into_headers();
        for (name, value) in auth
            .headers()
            .map_err(|e| format!("cannot authenticate: {e}"))?
        {
            if let Some(name) = name {
                headers.insert(name, value);
            }
        }
        Ok(MetadataMap::from_headers(headers))
    }

    /// Records the server rejected in partial successes so far.
    pub fn rejected_records(&self) -> u64 {
        self.rejected.get()
    }

    fn channel(&self) -> Result<Channel, String> {
        let bad = |e: &dyn std::fmt::Display| format!("bad endpoint {}: {e}", self.endpoint);
        let Some(tls) = &self.tls else {
            return Ok(Endpoint::from_shared(self.uri.clone())
                .map_err(|e| bad(&e))?
                .tcp_nodelay(true)
                .connect_lazy());
        };
        // TLS is ours (rustls as `tls` says: CA file, client certificate,
        // server name, skip-verify), not tonic's: the channel gets a
        // connector that makes the TCP connection and the handshake, and
        // sends `:scheme https` and the server's name as `:authority`.
        let tls = tls.load(ALPN_GRPC).map_err(|e| format!("tls.{e}"))?;
        let uri: Uri = self.uri.parse().map_err(|e| bad(&e))?;
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let authority = match tls.server_name(&host).map_err(|e| bad(&e))? {
            auditcol_core::tls::rustls::pki_types::ServerName::IpAddress(_) => host.clone(),
            name => name.to_str().into_owned(),
        };
        let origin: Uri = format!("https://{authority}:{port}")
            .parse()
            .map_err(|e| bad(&e))?;
        let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
            .map_err(|e| bad(&e))?
            .origin(origin);
        let connector = tower::service_fn(move |_: Uri| {
            let (tls, host) = (tls.clone(), host.clone());
            async move {
                tls.connect(&host, port)
                    .await
                    .map(hyper_util::rt::TokioIo::new)
            }
        });
        Ok(endpoint.connect_with_connector_lazy(connector))
    }
}

impl OtlpGrpcSender {
    /// Sends `batch` once, as one request: all of it is delivered or none.
    pub async fn send_batch(&self, batch: &LogBatch) -> Result<(), PipelineError> {
        let Some(channel) = self.channel.get() else {
            return Err(PipelineError::retryable(format!(
                "exporter {}: not started",
                self.id
            )));
        };
        let what = || format!("exporter {}: {}", self.id, self.endpoint);
        let mut encoded = Vec::with_capacity(batch.encoded_len());
        batch.encode_protobuf_into(&mut encoded);
        let mut client = tonic::client::Grpc::new(channel.clone())
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(usize::MAX);
        if self.compression == Compression::Gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        client.ready().await.map_err(|e| {
            PipelineError::retryable(format!("{}: not reachable: {}", what(), error_chain(&e)))
        })?;
        let metadata = self
            .call_metadata()
            .map_err(|e| PipelineError::retryable(format!("{}: {e}", what())))?;
        let mut request = tonic::Request::new(Bytes::from(encoded));
        *request.metadata_mut() = metadata;
        let response = client
            .unary(request, PathAndQuery::from_static(EXPORT_PATH), PreEncoded)
            .await
            .map_err(|status| {
                // A status with a source is tonic's account of a broken
                // connection (a reset, a TLS alert such as a refused client
                // certificate), not the server's answer: retryable, as
                // UNAVAILABLE is for gRPC clients.
                if std::error::Error::source(&status).is_some() {
                    PipelineError::retryable(format!(
                        "{}: the connection failed: {}",
                        what(),
                        error_chain(&status)
                    ))
                } else {
                    error_for(&status, &what())
                }
            })?;
        self.rejected
            .note(&self.id, &partial_success_proto(response.get_ref()), batch);
        Ok(())
    }
}

#[async_trait]
impl BatchSender for OtlpGrpcSender {
    async fn start(&self) -> Result<(), StartError> {
        let channel = self
            .channel()
            .map_err(|e| StartError(format!("exporter {}: {e}", self.id)))?;
        // A second start keeps the first channel.
        let _ = self.channel.set(channel);
        Ok(())
    }

    async fn send(&self, batch: &LogBatch) -> Result<(), SendError> {
        Ok(self.send_batch(batch).await?)
    }
}

/// A gRPC codec for messages that are already protobuf bytes: the request
/// is sent as is, the response handed back undecoded.
#[derive(Debug, Clone, Copy)]
struct PreEncoded;

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
}

impl Decoder for PreEncoded {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
