//! The `health_check` extension: an HTTP endpoint for load balancers and
//! orchestrators, in the shape of the OpenTelemetry Collector's.
//!
//! ```yaml
//! extensions:
//!   health_check:
//!     endpoint: 127.0.0.1:13133   # default localhost:13133
//!     path: /                     # default
//! service:
//!   extensions: [health_check]
//! ```
//!
//! `GET <path>` answers 200 when the service and every component run, 503
//! while they start or stop (or one failed), with a JSON body naming each
//! component's state:
//!
//! ```json
//! {"status":"ok","components":{"extensions::health_check":"running","exporters::file":"running",
//!  "processors::batch (logs)":"running","receivers::otlp":"running"}}
//! ```
//!
//! The states come from the service's status board
//! ([`Host::status`](auditcol_core::component::Host::status)). Extensions
//! start first and stop last, so the endpoint answers 503 through the whole
//! start and the whole shutdown.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use auditcol_core::component::{
    BuildContext, Component, ComponentId, Extension, ExtensionFactory, StartError,
};
use auditcol_core::config::ConfigError;
use auditcol_core::receiverhelper::{ConnectionLimit, HttpTimeouts, serve_http};
use auditcol_core::status::{ComponentState, Snapshot, StatusBoard};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub mod config;

pub use config::HealthCheckConfig;

/// The type name in component ids: `health_check`, `health_check/<name>`.
pub const TYPE_NAME: &str = "health_check";

/// Health checkers are few: this many connections at once is plenty.
const MAX_CONNECTIONS: usize = 64;

/// Builds `health_check` extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthCheckExtensionFactory;

impl ExtensionFactory for HealthCheckExtensionFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Extension>, ConfigError> {
        let config: HealthCheckConfig = ctx.parse_config(config)?;
        Ok(Arc::new(HealthCheckExtension::new(
            ctx.id.clone(),
            &config,
            ctx.host.status().clone(),
        )?))
    }
}

/// The running endpoint.
struct Running {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// Serves the states of `board` between [`Component::start`] and
/// [`Component::shutdown`].
pub struct HealthCheckExtension {
    id: ComponentId,
    addr: SocketAddr,
    path: String,
    board: StatusBoard,
    running: Mutex<Option<Running>>,
}

impl HealthCheckExtension {
    /// An extension reporting `board`; nothing is bound until `start`.
    pub fn new(
        id: ComponentId,
        config: &HealthCheckConfig,
        board: StatusBoard,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: config
                .socket_addr()
                .map_err(|e| ConfigError::at("endpoint", e))?,
            path: config.path.clone(),
            id,
            board,
            running: Mutex::new(None),
        })
    }

    /// The address listened on (the port the OS chose for port 0); `None`
    /// when not started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.lock().as_ref().map(|r| r.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone)]
struct Endpoint {
    path: Arc<str>,
    board: StatusBoard,
}

#[async_trait]
impl Component for HealthCheckExtension {
    async fn start(&self) -> Result<(), StartError> {
        if self.lock().is_some() {
            return Err(StartError(format!(
                "extension {} is already started",
                self.id
            )));
        }
        let listener = TcpListener::bind(self.addr).await.map_err(|e| {
            StartError(format!(
                "cannot listen on {} for the health check (endpoint): {e}",
                self.addr
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError(format!("cannot read the health check address: {e}")))?;
        let router = Router::new().fallback(answer).with_state(Endpoint {
            path: self.path.as_str().into(),
            board: self.board.clone(),
        });
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_http(
            listener,
            ConnectionLimit::new(MAX_CONNECTIONS, format!("{} http", self.id)),
            router,
            HttpTimeouts::default(),
            // Plain HTTP: probes come from the orchestrator, on loopback or
            // the pod network.
            None,
            shutdown.clone(),
        ));
        // Tests and operators find the chosen port from this event.
        tracing::info!(component = %self.id, protocol = "health_check", endpoint = %addr, path = %self.path, "listening");
        *self.lock() = Some(Running {
            addr,
            shutdown,
            task,
        });
        Ok(())
    }

    async fn shutdown(&self, deadline: Instant) {
        let Some(mut running) = self.lock().take() else {
            return;
        };
        running.shutdown.cancel();
        if tokio::time::timeout_at(deadline, &mut running.task)
            .await
            .is_err()
        {
            running.task.abort();
        }
    }
}

impl Extension for HealthCheckExtension {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

async fn answer(State(endpoint): State<Endpoint>, request: Request) -> Response {
    if request.uri().path() != &*endpoint.path {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "404 not found: the health check answers at {}",
                endpoint.path
            ),
        )
            .into_response();
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(
                axum::http::header::ALLOW,
                HeaderValue::from_static("GET, HEAD"),
            )],
            "405 method not allowed: send GET",
        )
            .into_response();
    }
    let snapshot = endpoint.board.snapshot();
    let status = if snapshot.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, body(&snapshot)).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"status": ..., "components": {...}}`, and the failures' reasons under
/// `errors` when some component failed.
fn body(snapshot: &Snapshot) -> String {
    let mut components = serde_json::Map::new();
    let mut errors = serde_json::Map::new();
    for (component, state) in &snapshot.components {
        components.insert(component.clone(), state.as_str().into());
        if let ComponentState::Failed(why) = state {
            errors.insert(component.clone(), why.as_str().into());
        }
    }
    let mut body = serde_json::Map::new();
    body.insert("status".into(), snapshot.service.as_str().into());
    body.insert("components".into(), components.into());
    if !errors.is_empty() {
        body.insert("errors".into(), errors.into());
    }
    serde_json::Value::Object(body).to_string()
}

#[cfg(test)]
mod tests;
