//! The metrics endpoint: `GET /metrics` in the OpenMetrics text format,
//! on `service.telemetry.metrics.address`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Telemetry;
use crate::receiverhelper::{ConnectionLimit, HttpTimeouts, serve_http};

/// The media type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The path metrics are served at, as the Collector's.
pub const METRICS_PATH: &str = "/metrics";

/// Scrapers are few: this many connections at once is plenty.
const MAX_CONNECTIONS: usize = 64;

/// A running metrics endpoint.
pub struct MetricsServer {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Binds `addr` and serves `telemetry` there. A port in use is an error
    /// that names the address.
    pub async fn start(addr: SocketAddr, telemetry: Telemetry) -> Result<Self, String> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            format!("cannot serve metrics on {addr} (service.telemetry.metrics.address): {e}")
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the metrics listen address: {e}"))?;
        let router = Router::new()
            .route(METRICS_PATH, get(metrics))
            .fallback(not_found)
            .with_state(telemetry);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_http(
            listener,
            ConnectionLimit::new(MAX_CONNECTIONS, "telemetry metrics"),
            router,
            HttpTimeouts::default(),
            // Plain HTTP, as the Collector's default Prometheus reader.
            None,
            shutdown.clone(),
        ));
        // Tests and operators find the chosen port from this event.
        tracing::info!(component = "telemetry", protocol = "metrics", endpoint = %addr, path = METRICS_PATH, "listening");
        Ok(Self {
            addr,
            shutdown,
            task,
        })
    }

    /// The address listened on (the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving; scrapes in flight finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

async fn metrics(State(telemetry): State<Telemetry>) -> Response {
    let body = telemetry.encode();
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
    );
    response
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("404 not found: metrics are served at GET {METRICS_PATH}"),
    )
        .into_response()
}
