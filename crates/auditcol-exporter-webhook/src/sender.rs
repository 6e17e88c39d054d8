//! [`WebhookSender`]: one batch as HTTP requests, and what became of each.
//!
//! A batch is first planned into requests: in `mode: event` one per audit
//! event, in lanes by noun; in `mode: batch` one per `max_events_per_request`
//! events, in a single lane. Lanes run side by side, at most
//! `max_concurrent_requests` requests in flight in all; inside a lane
//! requests go one after another in batch order, so a receiver sees the
//! events of one noun in the order they happened. When a request fails in a
//! way that may pass later, its lane stops there: that request and the rest
//! of the lane remain, and only they are sent again (by the exporter helper,
//! after its backoff). A request refused for good does not stop its lane.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use auditcol_core::auth::ClientAuthenticator;
use auditcol_core::component::StartError;
use auditcol_core::error::error_chain;
use auditcol_core::exporterhelper::{BatchSender, PartialFailure, SendError};
use auditcol_core::httpclient::{self, TlsClientSettings};
use auditcol_core::signature::BodySigner;
use auditcol_core::telemetry::{DropReason, Drops, Telemetry};
use auditcol_core::{LogBatch, PipelineError, RecordRef};
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Semaphore;

use crate::config::{Method, Mode, WebhookExporterConfig};
use crate::template::BodyTemplate;
use auditcol_core::config::Secret;

/// At most this much of an error answer is read, for the message.
const MAX_ANSWER_BYTES: usize = 4096;

/// Sends the audit events of a batch as webhook requests.
pub struct WebhookSender {
    /// The exporter id, for messages.
    id: String,
    url: String,
    method: reqwest::Method,
    mode: Mode,
    events_per_request: usize,
    max_concurrent_requests: usize,
    content_type: HeaderValue,
    headers: HeaderMap,
    /// The header and key requests are signed with.
    signer: Option<(HeaderName, BodySigner)>,
    template: Option<BodyTemplate>,
    timeout: Duration,
    tls: TlsClientSettings,
    /// `auth`: headers asked for on every request (a token may rotate).
    auth: Option<Arc<dyn ClientAuthenticator>>,
    client: OnceLock<reqwest::Client>,
    /// Records skipped: a webhook carries audit events only.
    non_audit: Drops,
}

/// One planned request: the records it carries (indices into the batch) and
/// the exact bytes it sends.
struct Request {
    records: Vec<usize>,
    body: Bytes,
}

/// A batch as requests, before any is sent.
#[derive(Default)]
struct Plan {
    /// Requests by lane; inside a lane, in batch order.
    lanes: Vec<Vec<Request>>,
    /// Records whose body could not be made (a template that fails), and why.
    unrenderable: Vec<(Vec<usize>, String)>,
    /// Records that are not audit events: a webhook carries audit events only.
    skipped: usize,
}

/// What became of one lane's requests.
#[derive(Default)]
struct LaneOutcome {
    delivered: usize,
    /// Requests refused for good (by index in the lane), and why.
    refused: Vec<(usize, PipelineError)>,
    /// Where the lane stopped on a failure that may pass: that request and
    /// those after it remain.
    stopped: Option<(usize, PipelineError)>,
}

impl WebhookSender {
    /// A sender for a validated `config`.
    pub fn new(id: impl Into<String>, config: &WebhookExporterConfig) -> Self {
        let id: String = id.into();
        let signer = config
            .signing_secret
            .as_ref()
            .map(Secret::expose)
            .and_then(|secret| {
                let header = HeaderName::from_bytes(config.signature_header().as_bytes()).ok()?;
                Some((header, BodySigner::new(secret)))
            });
        let template = config
            .template
            .as_ref()
            .and_then(|t| BodyTemplate::new(&t.body, &t.content_type).ok());
        let content_type = config
            .template
            .as_ref()
            .and_then(|t| HeaderValue::from_str(&t.content_type).ok())
            .unwrap_or(HeaderValue::from_static("application/json"));
        Self {
            non_audit: Telemetry::disabled().exporter_drops(&id, DropReason::NonAudit),
            id,
            url: config.endpoint.clone().unwrap_or_default(),
            method: match config.method {
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
            },
            mode: config.mode,
            events_per_request: config.events_per_request(),
            max_concurrent_requests: config.max_concurrent_requests,
            content_type,
            headers: httpclient::header_map(&config.headers),
            signer,
            template,
            timeout: config.timeout.0,
            tls: config.tls.clone(),
            auth: None,
            client: OnceLock::new(),
        }
    }

    /// The same sender, counting the records it skips (not audit events)
    /// in `non_audit`.
    pub fn with_non_audit_drops(mut self, non_audit: Drops) -> Self {
        self.non_audit = non_audit;
        self
    }

    /// Sends the credentials of `auth` (the client side of an authenticator
    /// extension) with every request.
    pub fn with_auth(mut self, auth: Option<Arc<dyn ClientAuthenticator>>) -> Self {
        self.auth = auth;
        self
    }

    /// The requests for `batch`.
    fn plan(&self, batch: &LogBatch) -> Plan {
        let mut plan = Plan::default();
        let audit = batch
            .records()
            .enumerate()
            .filter(|(_, record)| record.audit_noun_verb().is_some());
        match self.mode {
            Mode::Event => {
                let mut lane_of: HashMap<&str, usize> = HashMap::new();
                for (index, record) in audit {
                    let (noun, _) = record.audit_noun_verb().unwrap_or_default();
                    let lane = *lane_of.entry(noun).or_insert_with(|| {
                        plan.lanes.push(Vec::new());
                        plan.lanes.len() - 1
                    });
                    match self.event_body(&record) {
                        Ok(body) => plan.lanes[lane].push(Request {
                            records: vec![index],
                            body,
                        }),
                        Err(e) => plan.unrenderable.push((vec![index], e)),
                    }
                }
            }
            Mode::Batch => {
                let audit: Vec<(usize, RecordRef<'_>)> = audit.collect();
                let mut lane = Vec::new();
                for chunk in audit.chunks(self.events_per_request) {
                    let records = chunk.iter().map(|(i, _)| *i).collect();
                    match self.batch_body(chunk.iter().map(|(_, r)| r)) {
                        Ok(body) => lane.push(Request { records, body }),
                        Err(e) => plan.unrenderable.push((records, e)),
                    }
                }
                if !lane.is_empty() {
                    plan.lanes.push(lane);
                }
            }
        }
        plan.skipped = batch.len()
            - plan
                .lanes
                .iter()
                .flatten()
                .map(|r| r.records.len())
                .sum::<usize>()
            - plan
                .unrenderable
                .iter()
                .map(|(r, _)| r.len())
                .sum::<usize>();
        plan
    }

    /// One event's body: its Flipt JSON, or the template rendered for it.
    fn event_body(&self, record: &RecordRef<'_>) -> Result<Bytes, String> {
        let mut json = Vec::with_capacity(256);
        record.write_audit_json(&mut json);
        let Some(template) = &self.template else {
            return Ok(Bytes::from(json));
        };
        let context = template_event(record, &json)?;
        template.render(&context).map(Bytes::from)
    }

    /// One request's body in `mode: batch`: a JSON array of the events, or
    /// the template rendered for `events`.
    fn batch_body<'a>(
        &self,
        records: impl Iterator<Item = &'a RecordRef<'a>>,
    ) -> Result<Bytes, String> {
        let mut json = Vec::with_capacity(4096);
        match &self.template {
            None => {
                json.push(b'[');
                for (n, record) in records.enumerate() {
                    if n > 0 {
                        json.push(b',');
                    }
                    record.write_audit_json(&mut json);
                }
                json.push(b']');
                Ok(Bytes::from(json))
            }
            Some(template) => {
                let mut events = Vec::new();
                for record in records {
                    json.clear();
                    record.write_audit_json(&mut json);
                    events.push(template_event(record, &json)?);
                }
                template
                    .render(&serde_json::json!({ "events": events }))
                    .map(Bytes::from)
            }
        }
    }

    /// Sends one request once.
    async fn post(&self, client: &reqwest::Client, request: &Request) -> Result<(), PipelineError> {
        let mut builder = client
            .request(self.method.clone(), &self.url)
            .header(CONTENT_TYPE, self.content_type.clone());
        if let Some((header, signer)) = &self.signer {
            builder = builder.header(header.clone(), signer.sign_hex(&request.body));
        }
        let what = || format!("exporter {}: {} {}", self.id, self.method, self.url);
        let builder = httpclient::authenticate(builder, self.auth.as_ref())
            .map_err(|e| PipelineError::retryable(format!("{}: {e}", what())))?;
        let response = builder
            .body(request.body.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    PipelineError::retryable(format!(
                        "{}: no answer within {:?} (timeout)",
                        what(),
                        self.timeout
                    ))
                } else {
                    PipelineError::retryable(format!("{}: {}", what(), error_chain(&e)))
                }
            })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(());
        }
        let retry_after = httpclient::retry_after(response.headers(), SystemTime::now());
        // The answer is only for the message: an error reading it changes nothing.
        let said = httpclient::read_body_limited(response, MAX_ANSWER_BYTES)
            .await
            .map(|body| httpclient::body_snippet(&body))
            .unwrap_or_default();
        let message = if said.is_empty() {
            format!("{} answered HTTP {status}", what())
        } else {
            format!("{} answered HTTP {status}: {said}", what())
        };
        if is_retryable(status) {
            Err(PipelineError::Retryable {
                message,
                retry_after,
            })
        } else {
            Err(PipelineError::permanent(message))
        }
    }

    /// Sends a lane's requests in order, each waiting for a place among the
    /// requests in flight.
    async fn run_lane(
        &self,
        client: &reqwest::Client,
        lane: &[Request],
        in_flight: &Semaphore,
    ) -> LaneOutcome {
        let mut outcome = LaneOutcome::default();
        for (n, request) in lane.iter().enumerate() {
            let result = {
                let Ok(_place) = in_flight.acquire().await else {
                    unreachable!("the semaphore is never closed")
                };
                self.post(client, request).await
            };
            match result {
                Ok(()) => outcome.delivered += 1,
                Err(e) if e.is_permanent() => outcome.refused.push((n, e)),
                Err(e) => {
                    outcome.stopped = Some((n, e));
                    break;
                }
            }
        }
        outcome
    }
}

/// A template's view of one event: its Flipt JSON fields plus `id` and `source`.
fn template_event(record: &RecordRef<'_>, json: &[u8]) -> Result<serde_json::Value, String> {
    let mut event: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("cannot read the event as JSON: {e}"))?;
    if let Some(fields) = event.as_object_mut() {
        for (key, value) in [
            ("id", record.audit_id()),
            ("source", record.attribute("audit.source")),
        ] {
            if let Some(value) = value {
                fields.insert(key.to_owned(), value.into());
            }
        }
    }
    Ok(event)
}

/// 408, 429 and 5xx may pass if sent again; any other answer will not.
fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status)
}

#[async_trait]
impl BatchSender for WebhookSender {
    async fn start(&self) -> Result<(), StartError> {
        let client = httpclient::client_builder(self.headers.clone(), &self.tls)
            .map(|b| {
                // A redirect would turn a POST into a GET or resend the body
                // elsewhere: a 3xx is an answer like any other.
                let b = b.redirect(reqwest::redirect::Policy::none());
                if self.timeout.is_zero() {
                    b
                } else {
                    b.timeout(self.timeout)
                }
            })
            .and_then(httpclient::build)
            .map_err(|e| StartError(format!("exporter {}: {e}", self.id)))?;
        // A second start keeps the first client.
        let _ = self.client.set(client);
        Ok(())
    }

    async fn send(&self, batch: &LogBatch) -> Result<(), SendError> {
        let Some(client) = self.client.get() else {
            return Err(
                PipelineError::retryable(format!("exporter {}: not started", self.id)).into(),
            );
        };
        let plan = self.plan(batch);
        self.non_audit
            .add(plan.skipped, &"a webhook carries audit events only");
        let in_flight = Semaphore::new(self.max_concurrent_requests);
        let outcomes = futures::future::join_all(
            plan.lanes
                .iter()
                .map(|lane| self.run_lane(client, lane, &in_flight)),
        )
        .await;

        let mut failure = PartialFailure::default();
        let mut remaining = vec![false; batch.len()];
        let mut retry_error = None;
        let mut delivered = 0;
        for (records, error) in plan.unrenderable {
            let ids = batch.audit_ids_at(&records);
            tracing::warn!(exporter = %self.id, audit_ids = %ids, error = %error, "cannot render template.body: the events are not sent");
            failure.reject(
                records.len(),
                PipelineError::permanent(format!(
                    "exporter {}: cannot render template.body for event {ids}: {error}",
                    self.id
                )),
            );
        }
        for (lane, outcome) in plan.lanes.iter().zip(outcomes) {
            delivered += outcome.delivered;
            for (n, error) in outcome.refused {
                let records = &lane[n].records;
                tracing::warn!(
                    exporter = %self.id,
                    audit_ids = %batch.audit_ids_at(records),
                    error = error.message(),
                    "the endpoint refused events for good: they are not sent again"
                );
                failure.reject(records.len(), error);
            }
            if let Some((n, error)) = outcome.stopped {
                for request in &lane[n..] {
                    for &index in &request.records {
                        remaining[index] = true;
                    }
                }
                retry_error.get_or_insert(error);
            }
        }
        failure.finish(batch, &remaining, retry_error, delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_answers_are_408_429_and_5xx() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable(status), "{status}");
        }
        for status in [300, 301, 400, 401, 403, 404, 409, 410, 413, 422] {
            assert!(!is_retryable(status), "{status}");
        }
    }
}
