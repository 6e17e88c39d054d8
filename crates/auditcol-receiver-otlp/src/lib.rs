//! The `otlp` receiver: OTLP/gRPC and OTLP/HTTP log export, in the shape of
//! the OpenTelemetry Collector's OTLP receiver.
//!
//! Every request is decoded and its records checked against the audit
//! conventions ([`LogBatch::decode_protobuf`]), stamped
//! ([`LogBatch::prepare_ingest`]: observed time, `audit.id`, `audit.source`
//! = `otlp`) and handed to the pipeline. The client hears back only once the
//! pipeline has the batch: success — with an OTLP `partial_success` naming
//! the first invalid record and counting them when some were left out — or
//! an error it can act on (bad data: INVALID_ARGUMENT / 400, never retried;
//! full or failing pipeline: UNAVAILABLE / 503 with `Retry-After`, retried).
//!
//! With a `memory_limiter` in a pipeline it feeds, every request is first
//! admitted by it, before its body is read (refused: UNAVAILABLE / 503 with
//! a retry hint), and holds the bytes it received plus the cost of decoding
//! them ([`LogBatch::decode_cost`]) until the pipeline answered.
//!
//! With `auth` on a protocol, every request must first pass the named
//! authenticator extension, on its headers alone: a refused one is answered
//! UNAUTHENTICATED / 401 before any of its body is read, counted
//! ([`OtlpReceiver::unauthenticated_requests`]) and logged without the
//! credential.
//!
//! The factory only parses the config; sockets are bound in
//! [`Component::start`] and released in [`Component::shutdown`].
//!
//! [`LogBatch::decode_protobuf`]: auditcol_core::LogBatch::decode_protobuf
//! [`LogBatch::prepare_ingest`]: auditcol_core::LogBatch::prepare_ingest
//! [`LogBatch::decode_cost`]: auditcol_core::LogBatch::decode_cost

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use auditcol_core::auth::{AuthRefusals, RequestAuth};
use auditcol_core::component::{Host, StartError};
use auditcol_core::config::ConfigError;
use auditcol_core::memorylimiter::Admission;
use auditcol_core::receiverhelper::ConnectionLimit;
use auditcol_core::telemetry::Telemetry;
use auditcol_core::tls::{ALPN_GRPC, ALPN_HTTP, ServerTls, TlsServerSettings};
use auditcol_core::{
    BuildContext, Component, ComponentId, Receiver, ReceiverFactory, SharedConsumer,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod compression;
pub mod config;
mod grpc_server;
mod http_server;
mod ingest;

pub use config::{GrpcConfig, HttpConfig, OnInvalidRecord, OtlpReceiverConfig, Protocols};

use ingest::Ingest;

/// The component type in config ids (`otlp`, `otlp/<name>`).
pub const TYPE_NAME: &str = "otlp";

/// Builds `otlp` receivers.
pub struct OtlpReceiverFactory;

impl ReceiverFactory for OtlpReceiverFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Receiver>, ConfigError> {
        let config: OtlpReceiverConfig = ctx.parse_config(config)?;
        let receiver = OtlpReceiver::new(ctx.id.clone(), config, next)
            .with_admission(ctx.host.admission().clone())
            .with_telemetry(&ctx.telemetry)
            .with_authenticators(&ctx.host)?;
        Ok(Arc::new(receiver))
    }
}

/// An OTLP receiver: serves the enabled protocols between
/// [`Component::start`] and [`Component::shutdown`].
pub struct OtlpReceiver {
    id: ComponentId,
    config: OtlpReceiverConfig,
    next: SharedConsumer,
    ingest: Arc<Ingest>,
    /// The memory limiters asked before a request is read.
    admission: Admission,
    /// Listeners bound by [`Component::bind`], waiting for `start`.
    bound: Mutex<Option<Bound>>,
    /// The authentication of each protocol that has `auth`.
    grpc_auth: Option<RequestAuth>,
    http_auth: Option<RequestAuth>,
    auth_refusals: AuthRefusals,
    running: Mutex<Option<Running>>,
}

/// The listeners of the enabled protocols, bound and not yet served.
struct Bound {
    grpc: Option<TcpListener>,
    http: Option<TcpListener>,
}

/// The servers of a started receiver.
struct Running {
    addrs: Vec<(&'static str, SocketAddr)>,
    shutdown: CancellationToken,
    servers: Vec<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// A receiver sending to `next`; nothing is bound until `bind` or `start`.
    /// `config` must have been validated (the factory does it).
    pub fn new(id: ComponentId, config: OtlpReceiverConfig, next: SharedConsumer) -> Self {
        Self {
            ingest: Arc::new(Ingest::new(
                id.clone(),
                next.clone(),
                config.on_invalid_record,
                &Telemetry::disabled(),
            )),
            next,
            id,
            config,
            admission: Admission::default(),
            bound: Mutex::new(None),
            grpc_auth: None,
            http_auth: None,
            auth_refusals: AuthRefusals::default(),
            running: Mutex::new(None),
        }
    }

    /// The same receiver, counting what it accepts and refuses in
    /// `telemetry` (`otelcol_receiver_*_log_records{transport="grpc"|"http"}`).
    pub fn with_telemetry(mut self, telemetry: &Telemetry) -> Self {
        self.ingest = Arc::new(
            Ingest::new(
                self.id.clone(),
                self.next.clone(),
                self.config.on_invalid_record,
                telemetry,
            )
            .with_admission(self.admission.clone()),
        );
        self
    }

    /// The same receiver, asking `admission` (the memory limiters of the
    /// pipelines it feeds) before it reads a request, and accounting each
    /// request's decoded size until the pipeline answered. Call before
    /// `with_telemetry`.
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self.with_telemetry(&Telemetry::disabled())
    }

    /// Records accepted and refused so far over `protocol` (`grpc`, `http`).
    pub fn record_counts(&self, protocol: &str) -> (u64, u64) {
        let telemetry = self.ingest.telemetry(protocol);
        (
            telemetry.accepted_records(),
            telemetry.refused_log_records(),
        )
    }

    /// Binds every enabled protocol's endpoint, all or none: a port
    /// conflict fails without leaving half a receiver listening.
    async fn bind_all(&self) -> Result<Bound, StartError> {
        let protocols = &self.config.protocols;
        let grpc = match &protocols.grpc {
            Some(c) => Some(bind(c.socket_addr(), "OTLP/gRPC").await?),
            None => None,
        };
        let http = match &protocols.http {
            Some(c) => Some(bind(c.socket_addr(), "OTLP/HTTP").await?),
            None => None,
        };
        Ok(Bound { grpc, http })
    }

    /// Finds the authenticators the protocols' `auth` name among `host`'s
    /// extensions; from then on every request of such a protocol must pass
    /// its authenticator. The factory does it (after `with_telemetry`, so
    /// refusals are counted in the metrics): a receiver whose config has
    /// `auth` refuses to start without.
    pub fn with_authenticators(mut self, host: &Host) -> Result<Self, ConfigError> {
        let protocols = &self.config.protocols;
        self.grpc_auth = RequestAuth::resolve(
            protocols.grpc.as_ref().and_then(|c| c.auth.as_ref()),
            "protocols.grpc.auth",
            host,
            &self.id,
            "grpc",
            &self.auth_refusals,
        )?
        .map(|auth| auth.with_telemetry(self.ingest.telemetry("grpc").clone()));
        self.http_auth = RequestAuth::resolve(
            protocols.http.as_ref().and_then(|c| c.auth.as_ref()),
            "protocols.http.auth",
            host,
            &self.id,
            "http",
            &self.auth_refusals,
        )?
        .map(|auth| auth.with_telemetry(self.ingest.telemetry("http").clone()));
        Ok(self)
    }

    /// Requests refused so far because they did not authenticate (missing
    /// or wrong credentials, or none checkable now), both protocols together.
    pub fn unauthenticated_requests(&self) -> u64 {
        self.auth_refusals.get()
    }

    /// The addresses actually listened on, as (`"grpc"` | `"http"`, address):
    /// with port 0 configured, the ports the OS chose. Empty when not started.
    pub fn local_addrs(&self) -> Vec<(&'static str, SocketAddr)> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|r| r.addrs.clone())
            .unwrap_or_default()
    }
}

/// Binds `endpoint` for `protocol` (`OTLP/gRPC`, `OTLP/HTTP`).
async fn bind(
    endpoint: Result<SocketAddr, String>,
    protocol: &str,
) -> Result<TcpListener, StartError> {
    let addr = endpoint.map_err(|e| StartError(format!("{protocol}: {e}")))?;
    TcpListener::bind(addr)
        .await
        .map_err(|e| StartError(format!("cannot listen on {addr} for {protocol}: {e}")))
}

fn local_addr(listener: &TcpListener, protocol: &str) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|e| StartError(format!("cannot read the {protocol} listen address: {e}")))
}

/// Loads the `tls` of the listener at `path` (`protocols.grpc`), if any.
/// The files were checked at build; one that changed since fails the start.
fn load_tls(
    settings: Option<&TlsServerSettings>,
    alpn: &[&[u8]],
    listener: String,
    path: &str,
) -> Result<Option<Arc<ServerTls>>, StartError> {
    settings
        .map(|settings| {
            ServerTls::load(settings, alpn, listener)
                .map_err(|e| StartError(format!("{path}.tls.{e}")))
        })
        .transpose()
}

/// Runs a server in the background; a server that fails after binding is
/// logged, as there is no caller left to tell.
fn spawn_server<E: std::fmt::Display>(
    id: ComponentId,
    protocol: &'static str,
    server: impl Future<Output = Result<(), E>> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(component = %id, protocol, error = %e, "the OTLP server stopped");
        }
    })
}

#[async_trait]
impl Component for OtlpReceiver {
    async fn bind(&self) -> Result<(), StartError> {
        let bound = self.bind_all().await?;
        *self.bound.lock().unwrap_or_else(PoisonError::into_inner) = Some(bound);
        Ok(())
    }

    async fn start(&self) -> Result<(), StartError> {
        if self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Err(StartError(format!(
                "receiver {} is already started",
                self.id
            )));
        }
        let protocols = &self.config.protocols;
        for (protocol, configured, resolved) in [
            (
                "grpc",
                protocols.grpc.as_ref().is_some_and(|c| c.auth.is_some()),
                self.grpc_auth.is_some(),
            ),
            (
                "http",
                protocols.http.as_ref().is_some_and(|c| c.auth.is_some()),
                self.http_auth.is_some(),
            ),
        ] {
            // Never serve without the authentication the config asks for.
            if configured && !resolved {
                return Err(StartError(format!(
                    "receiver {}: protocols.{protocol}.auth is set but no authenticator was resolved (build the receiver with its factory, or call with_authenticators)",
                    self.id
                )));
            }
        }
        let grpc_tls = load_tls(
            protocols.grpc.as_ref().and_then(|c| c.tls.as_ref()),
            ALPN_GRPC,
            format!("{} grpc", self.id),
            "protocols.grpc",
        )?;
        let http_tls = load_tls(
            protocols.http.as_ref().and_then(|c| c.tls.as_ref()),
            ALPN_HTTP,
            format!("{} http", self.id),
            "protocols.http",
        )?;
        let bound = self
            .bound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let bound = match bound {
            Some(bound) => bound,
            None => self.bind_all().await?,
        };
        let grpc = bound.grpc.zip(protocols.grpc.as_ref());
        let http = bound.http.zip(protocols.http.as_ref());

        let mut addrs = Vec::new();
        if let Some((listener, _)) = &grpc {
            addrs.push(("grpc", local_addr(listener, "OTLP/gRPC")?));
        }
        if let Some((listener, _)) = &http {
            addrs.push(("http", local_addr(listener, "OTLP/HTTP")?));
        }

        let shutdown = CancellationToken::new();
        let mut servers = Vec::new();
        if let Some((listener, c)) = grpc {
            let server = grpc_server::serve(
                listener,
                self.ingest.clone(),
                grpc_server::Limits {
                    max_recv_msg_size: c.max_recv_msg_size_bytes(),
                    max_concurrent_streams: c.max_concurrent_streams,
                    connections: ConnectionLimit::new(
                        c.max_connections,
                        format!("{} grpc", self.id),
                    )
                    .with_telemetry(self.ingest.telemetry("grpc").clone()),
                    keepalive: c.keepalive.server_parameters.clone(),
                    ping_policy: c.keepalive.enforcement_policy.ping_policy(),
                    tls: grpc_tls.clone(),
                },
                self.grpc_auth.clone(),
                shutdown.clone(),
            );
            servers.push(spawn_server(self.id.clone(), "grpc", server));
        }
        if let Some((listener, c)) = http {
            let server = http_server::serve(
                listener,
                http_server::Limits {
                    max_body: c.max_request_body_bytes(),
                    connections: ConnectionLimit::new(
                        c.max_connections,
                        format!("{} http", self.id),
                    )
                    .with_telemetry(self.ingest.telemetry("http").clone()),
                    timeouts: c.timeouts(),
                    tls: http_tls.clone(),
                },
                self.ingest.clone(),
                self.http_auth.clone(),
                shutdown.clone(),
            );
            servers.push(spawn_server(self.id.clone(), "http", server));
        }
        for tls in grpc_tls.iter().chain(&http_tls) {
            if let Some(reloading) = tls.spawn_reloading(shutdown.clone()) {
                servers.push(reloading);
            }
        }
        for (protocol, local_addr) in &addrs {
            let tls = ServerTls::mode(match *protocol {
                "grpc" => grpc_tls.as_deref(),
                _ => http_tls.as_deref(),
            });
            // Tests and operators find the chosen ports from this event.
            tracing::info!(component = %self.id, protocol = *protocol, endpoint = %local_addr, tls, "listening");
            let auth = match *protocol {
                "grpc" => protocols.grpc.as_ref().and_then(|c| c.auth.as_ref()),
                _ => protocols.http.as_ref().and_then(|c| c.auth.as_ref()),
            };
            if let Some(auth) = auth {
                tracing::info!(component = %self.id, protocol = *protocol, authenticator = %auth.authenticator, "requests must authenticate");
            }
        }
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(Running {
            addrs,
            shutdown,
            servers,
        });
        Ok(())
    }

    async fn shutdown(&self, deadline: Instant) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(running) = running else {
            return;
        };
        // Stop accepting; requests in flight run to their answer.
        running.shutdown.cancel();
        for mut server in running.servers {
            if tokio::time::timeout_at(deadline, &mut server)
                .await
                .is_err()
            {
                tracing::warn!(component = %self.id, "shutdown deadline reached with OTLP requests still in flight; abandoning them");
                server.abort();
            }
        }
    }
}

impl Receiver for OtlpReceiver {}

#[cfg(test)]
mod tests;
