//! What both protocols do with a decoded request: check it against the audit
//! conventions, stamp it, hand it to the pipeline and wait for the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use auditcol_core::memorylimiter::{Admission, Reservation};
use auditcol_core::model::conventions::SOURCE_OTLP;
use auditcol_core::receiverhelper::now_unix_nanos;
use auditcol_core::telemetry::{ReceiverTelemetry, RefusalReason, Telemetry};
use auditcol_core::{ComponentId, Decoded, PipelineError, SharedConsumer};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};

use crate::config::OnInvalidRecord;

/// The receiver's link to its pipeline, shared by the gRPC and HTTP
/// servers; it counts and logs what it accepts and refuses, per transport.
pub(crate) struct Ingest {
    id: ComponentId,
    next: SharedConsumer,
    on_invalid_record: OnInvalidRecord,
    grpc: Arc<ReceiverTelemetry>,
    http: Arc<ReceiverTelemetry>,
    /// The memory limiters of the pipelines fed, asked before a request is read.
    admission: Admission,
}

/// A request the pipeline took, perhaps without some of its records.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Records left out because they are invalid (OTLP `rejected_log_records`).
    pub(crate) rejected: usize,
    /// The first one's path and reason, and how many more there were.
    pub(crate) message: String,
}

/// Why a request was not accepted.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// The request itself is bad (undecodable, or breaks the audit
    /// conventions): the client must not retry it.
    Invalid(String),
    /// The pipeline refused the batch.
    Pipeline(PipelineError),
}

impl Ingest {
    pub(crate) fn new(
        id: ComponentId,
        next: SharedConsumer,
        on_invalid_record: OnInvalidRecord,
        telemetry: &Telemetry,
    ) -> Self {
        Self {
            grpc: Arc::new(telemetry.receiver(&id, "grpc")),
            http: Arc::new(telemetry.receiver(&id, "http")),
            id,
            next,
            on_invalid_record,
            admission: Admission::default(),
        }
    }

    /// The same, asking `admission` before reading a request.
    pub(crate) fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// Lets a request in before its body is read, or counts and logs its
    /// refusal (the memory limiters are over their soft limit): answered
    /// with backpressure. The reservation is held until the pipeline answered.
    pub(crate) fn admit(
        &self,
        protocol: &str,
        client: Option<SocketAddr>,
    ) -> Result<Reservation, PipelineError> {
        self.admission.admit().inspect_err(|e| {
            self.telemetry(protocol)
                .refused_request(RefusalReason::Backpressure, 0, client, e);
        })
    }

    /// Reserves `bytes` more for a request, or counts and logs its refusal.
    pub(crate) fn reserve(
        &self,
        reservation: &mut Reservation,
        bytes: usize,
        protocol: &str,
        client: Option<SocketAddr>,
    ) -> Result<(), PipelineError> {
        reservation.grow(bytes).inspect_err(|e| {
            self.telemetry(protocol)
                .refused_request(RefusalReason::Backpressure, 0, client, e);
        })
    }

    /// The counters of `protocol` (`grpc` or `http`).
    pub(crate) fn telemetry(&self, protocol: &str) -> &Arc<ReceiverTelemetry> {
        if protocol == "grpc" {
            &self.grpc
        } else {
            &self.http
        }
    }

    /// Accepts a decoded request; completes only once the pipeline has it
    /// (or refused it), so the client is acknowledged only then. Invalid
    /// records are left out and reported (`partial_success`), or refuse the
    /// whole request under `on_invalid_record: reject_request`; a request
    /// with nothing valid in it is refused.
    pub(crate) async fn accept(
        &self,
        decoded: Decoded,
        protocol: &str,
        client: Option<SocketAddr>,
    ) -> Result<Accepted, Rejection> {
        let telemetry = self.telemetry(protocol);
        let Decoded {
            mut batch,
            rejected,
            first_rejection,
        } = decoded;
        let accepted = match first_rejection {
            None => Accepted::default(),
            Some(first) => {
                let message = if rejected > 1 {
                    format!("{first} (and {} more invalid records)", rejected - 1)
                } else {
                    first.to_string()
                };
                if batch.is_empty() || self.on_invalid_record == OnInvalidRecord::RejectRequest {
                    telemetry.refused_request(
                        RefusalReason::Invalid,
                        rejected + batch.len(),
                        client,
                        &message,
                    );
                    return Err(Rejection::Invalid(message));
                }
                telemetry.refused_records(RefusalReason::Invalid, rejected, client, &message);
                Accepted { rejected, message }
            }
        };
        if batch.is_empty() {
            return Ok(accepted);
        }
        batch.prepare_ingest(now_unix_nanos(), SOURCE_OTLP);
        let records = batch.len();
        tracing::debug!(component = %self.id, protocol, records, "records received");
        match self.next.consume(batch).await {
            Ok(()) => telemetry.accepted(records),
            Err(e) => {
                telemetry.refused_request(RefusalReason::of(&e), records, client, &e);
                return Err(Rejection::Pipeline(e));
            }
        }
        Ok(accepted)
    }

    /// Counts and logs a request refused before its records were read
    /// (undecodable, too large, an encoding not spoken).
    pub(crate) fn refuse(
        &self,
        protocol: &str,
        reason: RefusalReason,
        client: Option<SocketAddr>,
        error: &str,
    ) {
        self.telemetry(protocol)
            .refused_request(reason, 0, client, &error);
    }
}

impl Accepted {
    /// The OTLP response: `partial_success` only when records were left out.
    pub(crate) fn response(self) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: (self.rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: i64::try_from(self.rejected).unwrap_or(i64::MAX),
                error_message: self.message,
            }),
        }
    }
}

#[cfg(test)]
pub(crate) use auditcol_core::rpc_status::RETRY_INFO_TYPE_URL;
pub(crate) use auditcol_core::rpc_status::{RetryInfo, RpcStatus};
