//! The `webhook` receiver: audit events POSTed as JSON — Flipt's audit
//! webhooks, Flagsmith's audit-log webhooks, or any service's own events in
//! Flipt's v0.2 shape.
//!
//! A request is checked in the order that costs a bad client the least of
//! the collector's work: path and method, `auth` (an authenticator
//! extension, on the headers alone), media type, body size, signature
//! (HMAC-SHA256 of the raw body, compared in constant time), then every
//! event. One bad event refuses the whole request with its path
//! (`events[3].timestamp: not RFC 3339 ...`); a good request enters the
//! pipeline as one batch, through the same core path as OTLP records
//! (`LogBatch::try_from_events_with_attributes`, `prepare_ingest`), and is
//! answered 200 only once the pipeline has all of it.
//!
//! - [`config`]: the settings.
//! - `body`: bodies → one JSON value per event (object, array, NDJSON).
//! - `audit_event` / [`flagsmith`]: a value → the model's `AuditEvent`
//!   (and, for Flagsmith, its id and `flagsmith.*` attributes).
//! - `signature`: the HMAC check.
//! - `server` / `ingest`: HTTP answers, and the hand-over to the pipeline.
//!
//! The factory only parses the config; the socket is bound in
//! [`Component::start`] and released in [`Component::shutdown`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use auditcol_core::auth::{AuthRefusals, RequestAuth};
use auditcol_core::component::{Host, StartError};
use auditcol_core::config::ConfigError;
use auditcol_core::memorylimiter::Admission;
use auditcol_core::receiverhelper::ConnectionLimit;
use auditcol_core::telemetry::Telemetry;
use auditcol_core::tls::{ALPN_HTTP, ServerTls, TlsServerSettings};
use auditcol_core::{
    BuildContext, Component, ComponentId, Receiver, ReceiverFactory, SharedConsumer,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod audit_event;
mod body;
pub mod config;
mod decode;
pub mod flagsmith;
mod ingest;
mod server;
mod signature;

pub use config::{Format, WebhookReceiverConfig};
pub use ingest::{DECODE_COST_PER_BYTE, decode_cost};

/// The receiver's steps from request body to batch, for the fuzz targets
/// in `fuzz/`: not an API to build on.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::body::{BodyKind, EventError};
    pub use crate::decode::{DecodedRequest, ReceivedEvent, decode_request};
    pub use crate::ingest::batch_of;
}

use ingest::Ingest;
use server::Endpoint;
use signature::SignatureVerifier;

/// The component type in config ids (`webhook`, `webhook/<name>`).
pub const TYPE_NAME: &str = "webhook";

/// Builds `webhook` receivers.
pub struct WebhookReceiverFactory;

impl ReceiverFactory for WebhookReceiverFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Receiver>, ConfigError> {
        let config: WebhookReceiverConfig = ctx.parse_config(config)?;
        let receiver = WebhookReceiver::new(ctx.id.clone(), config, next)
            .with_admission(ctx.host.admission().clone())
            .with_telemetry(&ctx.telemetry);
        Ok(Arc::new(receiver.with_authenticator(&ctx.host)?))
    }
}

/// A webhook receiver: serves its endpoint between [`Component::start`] and
/// [`Component::shutdown`].
pub struct WebhookReceiver {
    id: ComponentId,
    config: WebhookReceiverConfig,
    next: SharedConsumer,
    endpoint: Arc<Endpoint>,
    /// The memory limiters of the pipelines this receiver feeds.
    admission: Admission,
    /// `auth` as configured, until resolved into `endpoint.auth`.
    auth_settings: Option<auditcol_core::auth::AuthSettings>,
    auth_refusals: AuthRefusals,
    addr: Result<SocketAddr, String>,
    max_connections: usize,
    timeouts: auditcol_core::receiverhelper::HttpTimeouts,
    tls: Option<TlsServerSettings>,
    /// The listener bound by [`Component::bind`], waiting for `start`.
    bound: Mutex<Option<TcpListener>>,
    running: Mutex<Option<Running>>,
}

struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
    reloading: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// A receiver sending to `next`; nothing is bound until `start`.
    /// `config` must have been validated (the factory does it).
    ///
    /// Events get `audit.source` = the receiver's name (`webhook/flipt` →
    /// `flipt`), or for an unnamed receiver the format's sender: `flipt`
    /// (`audit`) or `flagsmith`.
    pub fn new(id: ComponentId, config: WebhookReceiverConfig, next: SharedConsumer) -> Self {
        Self {
            endpoint: Arc::new(endpoint(
                &id,
                &config,
                &next,
                &Telemetry::disabled(),
                &Admission::default(),
            )),
            admission: Admission::default(),
            auth_settings: config.auth.clone(),
            auth_refusals: AuthRefusals::default(),
            addr: config.socket_addr(),
            max_connections: config.max_connections,
            timeouts: config.timeouts(),
            tls: config.tls.clone(),
            id,
            config,
            next,
            bound: Mutex::new(None),
            running: Mutex::new(None),
        }
    }

    /// The same receiver, counting what it accepts, refuses (bad
    /// signatures among them) and drops in `telemetry`. Call it before
    /// [`WebhookReceiver::with_authenticator`] (as the factory does): it
    /// makes the endpoint anew.
    pub fn with_telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.endpoint = Arc::new(endpoint(
            &self.id,
            &self.config,
            &self.next,
            telemetry,
            &self.admission,
        ));
        self
    }

    /// The same receiver, asking `admission` (the memory limiters of the
    /// pipelines it feeds) before it reads a request, and holding what the
    /// request costs — its body, then [`decode_cost`] of it — until the
    /// pipeline answered. Before the receiver starts.
    pub fn with_admission(mut self, admission: Admission) -> Self {
        Arc::get_mut(&mut self.endpoint)
            .expect("admission is set before the receiver starts")
            .admission = admission.clone();
        self.admission = admission;
        self
    }

    /// Events accepted and refused so far.
    pub fn record_counts(&self) -> (u64, u64) {
        let telemetry = &self.endpoint.telemetry;
        (
            telemetry.accepted_records(),
            telemetry.refused_log_records(),
        )
    }

    async fn bind_listener(&self) -> Result<TcpListener, StartError> {
        let addr = self.addr.clone().map_err(StartError)?;
        TcpListener::bind(addr)
            .await
            .map_err(|e| StartError(format!("cannot listen on {addr} for webhooks: {e}")))
    }

    /// Finds the authenticator `auth` names among `host`'s extensions; from
    /// then on every request must pass it. The factory does it: a receiver
    /// whose config has `auth` refuses to start without.
    pub fn with_authenticator(mut self, host: &Host) -> Result<Self, ConfigError> {
        let auth = RequestAuth::resolve(
            self.auth_settings.as_ref(),
            "auth",
            host,
            &self.id,
            "http",
            &self.auth_refusals,
        )?;
        if let Some(auth) = auth {
            let auth = auth.with_telemetry(self.endpoint.telemetry.clone());
            let endpoint = Arc::get_mut(&mut self.endpoint).ok_or_else(|| {
                ConfigError::at("auth", "cannot be resolved once the receiver has started")
            })?;
            endpoint.auth = Some(auth);
        }
        Ok(self)
    }

    /// Requests refused so far because they did not authenticate.
    pub fn unauthenticated_requests(&self) -> u64 {
        self.auth_refusals.get()
    }

    /// The address actually listened on (with port 0 configured, the port
    /// the OS chose); `None` when not started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|r| r.addr)
    }
}

/// What every request of receiver `id` needs.
fn endpoint(
    id: &ComponentId,
    config: &WebhookReceiverConfig,
    next: &SharedConsumer,
    telemetry: &Telemetry,
    admission: &Admission,
) -> Endpoint {
    let source = id
        .name()
        .unwrap_or(config.format.default_source())
        .to_owned();
    // With a secret, requests are always checked: an invalid header name
    // (a config that skipped validation) falls back to the format's.
    let verifier = config.signing_secret.as_ref().map(|secret| {
        let secret = secret.expose();
        let header = config
            .signature_header_name()
            .unwrap_or_else(|_| config.format.default_signature_header_name());
        SignatureVerifier::new(secret, header)
    });
    Endpoint {
        path: config.path.clone(),
        format: config.format,
        verifier,
        max_body: config.max_request_body_bytes(),
        ingest: Ingest::new(id.clone(), source, next.clone()),
        telemetry: Arc::new(telemetry.receiver(id, "http")),
        auth: None,
        admission: admission.clone(),
    }
}

#[async_trait]
impl Component for WebhookReceiver {
    async fn bind(&self) -> Result<(), StartError> {
        let listener = self.bind_listener().await?;
        *self.bound.lock().unwrap_or_else(PoisonError::into_inner) = Some(listener);
        Ok(())
    }

    async fn start(&self) -> Result<(), StartError> {
        if self.local_addr().is_some() {
            return Err(StartError(format!(
                "receiver {} is already started",
                self.id
            )));
        }
        if self.auth_settings.is_some() && self.endpoint.auth.is_none() {
            // Never serve without the authentication the config asks for.
            return Err(StartError(format!(
                "receiver {}: auth is set but no authenticator was resolved (build the receiver with its factory, or call with_authenticator)",
                self.id
            )));
        }
        // The files were checked at build; one that changed since fails the start.
        let tls = self
            .tls
            .as_ref()
            .map(|settings| {
                ServerTls::load(settings, ALPN_HTTP, self.id.to_string())
                    .map_err(|e| StartError(format!("tls.{e}")))
            })
            .transpose()?;
        let bound = self
            .bound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let listener = match bound {
            Some(listener) => listener,
            None => self.bind_listener().await?,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| StartError(format!("cannot read the webhook listen address: {e}")))?;
        let shutdown = CancellationToken::new();
        let id = self.id.clone();
        let serving = server::serve(
            listener,
            ConnectionLimit::new(self.max_connections, self.id.to_string())
                .with_telemetry(self.endpoint.telemetry.clone()),
            self.timeouts,
            tls.clone(),
            self.endpoint.clone(),
            shutdown.clone(),
        );
        let reloading = tls
            .as_ref()
            .and_then(|tls| tls.spawn_reloading(shutdown.clone()));
        let server = tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(component = %id, error = %e, "the webhook server stopped");
            }
        });
        let endpoint = &self.endpoint;
        // Tests and operators find the chosen port from this event.
        let tls = ServerTls::mode(tls.as_deref());
        tracing::info!(component = %self.id, protocol = "http", endpoint = %addr, path = %endpoint.path, format = endpoint.format.name(), tls, "listening");
        if let Some(auth) = &self.auth_settings {
            tracing::info!(component = %self.id, authenticator = %auth.authenticator, "requests must authenticate");
        }
        match &endpoint.verifier {
            Some(verifier) => {
                tracing::info!(component = %self.id, header = %verifier.header(), "requests must be signed");
            }
            None => tracing::warn!(
                component = %self.id,
                "no signing_secret: unsigned requests are accepted, so anyone who can reach {addr} can add audit events; set signing_secret to the secret configured in the sender"
            ),
        }
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(Running {
            addr,
            shutdown,
            server,
            reloading,
        });
        Ok(())
    }

    async fn shutdown(&self, deadline: Instant) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut running) = running else {
            return;
        };
        // Stop accepting; requests in flight run to their answer.
        running.shutdown.cancel();
        if let Some(reloading) = running.reloading {
            reloading.abort();
        }
        if tokio::time::timeout_at(deadline, &mut running.server)
            .await
            .is_err()
        {
            tracing::warn!(component = %self.id, "shutdown deadline reached with webhook requests still in flight; abandoning them");
            running.server.abort();
        }
    }
}

impl Receiver for WebhookReceiver {}

#[cfg(test)]
mod tests;
