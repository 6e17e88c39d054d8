//! What every receiver does the same way: parse its listen address, stamp
//! the time of receipt, and turn a refused batch into the protocol's answer.
//!
//! ```
//! use std::time::Duration;
//! use auditcol_core::PipelineError;
//! use auditcol_core::receiverhelper::{HttpRefusal, parse_endpoint};
//!
//! assert_eq!(parse_endpoint(":4318").unwrap().to_string(), "0.0.0.0:4318");
//! let full = PipelineError::backpressure("queue full", None);
//! assert_eq!(HttpRefusal::of(&full), HttpRefusal { status: 503, retry_after_secs: Some(1) });
//! let bad = PipelineError::permanent("rejected by the destination");
//! assert_eq!(HttpRefusal::of(&bad).status, 400);
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::PipelineError;
use crate::config::ConfigDuration;
use crate::telemetry::ReceiverTelemetry;
#[cfg(any(feature = "axum", feature = "tonic"))]
use crate::tls::ServerTls;
#[cfg(feature = "tonic")]
use crate::tls::TlsConnection;

mod watch;
pub use watch::{ConnectionRules, PingPolicy, Watched};

/// The default most connections one listener keeps open: far under the
/// open-file limit the binary raises at start, so exporters' files and
/// sockets always find handles.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// At most `limit` connections open at once on one listener. A connection
/// past it is closed as soon as it is accepted — it never waits, so it can
/// never hold a place an admitted client needs — and counted (with a
/// receiver's telemetry: `auditcol_receiver_refused_connections`, logged
/// rate-limited).
#[derive(Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    limit: usize,
    refused: Arc<AtomicU64>,
    /// For the log: the component and protocol.
    name: Arc<str>,
    telemetry: Option<Arc<ReceiverTelemetry>>,
}

impl std::fmt::Debug for ConnectionLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionLimit")
            .field("limit", &self.limit)
            .field("refused", &self.refused())
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ConnectionLimit {
    /// A limit of `limit` connections for the listener called `name`
    /// (e.g. `otlp grpc`).
    pub fn new(limit: usize, name: impl Into<Arc<str>>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            refused: Arc::default(),
            name: name.into(),
            telemetry: None,
        }
    }

    /// The same limit, counting and logging refusals in a receiver's telemetry.
    pub fn with_telemetry(mut self, telemetry: Arc<ReceiverTelemetry>) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// The receiver's telemetry this limit counts in, if any: the
    /// listener's connections count their closes there too.
    pub fn telemetry(&self) -> Option<Arc<ReceiverTelemetry>> {
        self.telemetry.clone()
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Accepts the next connection within the limit, with TCP_NODELAY set
    /// (without it a small response waits for the client's delayed ACK).
    /// Connections past the limit are closed on the spot; accept errors are
    /// retried (after a second when the process is out of file handles).
    pub async fn accept(&self, listener: &TcpListener) -> (Admitted<TcpStream>, SocketAddr) {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tracing::error!(listener = %self.name, error = %e, "cannot accept a connection; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(telemetry) = &self.telemetry {
                    telemetry.refused_connection(addr, self.limit);
                } else if refused == 1 || refused.is_multiple_of(1000) {
                    // The first one, then every thousandth: a flood must not flood the log too.
                    tracing::warn!(
                        listener = %self.name,
                        client = %addr,
                        max_connections = self.limit,
                        refused,
                        "refused a connection: max_connections are open"
                    );
                }
                drop(stream);
                continue;
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(listener = %self.name, error = %e, "cannot set TCP_NODELAY");
            }
            return (
                Admitted {
                    io: stream,
                    _permit: permit,
                },
                addr,
            );
        }
    }
}

/// An accepted connection holding its place under a [`ConnectionLimit`]
/// until it is dropped.
#[derive(Debug)]
pub struct Admitted<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
}

impl<IO> Admitted<IO> {
    /// The connection itself.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Admitted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Admitted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Parses a listen address: `ip:port`, `[ipv6]:port`, `localhost:port`
/// (loopback) or `:port` (all interfaces, as in the Collector). Host names
/// other than `localhost` are refused: resolving them would make validation
/// depend on DNS.
pub fn parse_endpoint(endpoint: &str) -> Result<SocketAddr, String> {
    let invalid = |why: &str| {
        format!(
            "invalid endpoint `{endpoint}`: {why}; write host:port with an IP address or `localhost`, e.g. `127.0.0.1:4317` or `0.0.0.0:4317`"
        )
    };
    if let Ok(addr) = endpoint.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| invalid("no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        h if h.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => return Err(invalid("the host is not an IP address")),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Now, in nanoseconds since the Unix epoch: the `observed_time_unix_nano`
/// a receiver stamps.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Whole seconds to put in `Retry-After`: rounded up, at least 1.
pub fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

/// The HTTP answer to a batch the pipeline refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRefusal {
    /// 400 for bad data (never retried), 503 for a full or failing pipeline.
    pub status: u16,
    /// `Retry-After` in seconds, when the client should be told to wait.
    pub retry_after_secs: Option<u64>,
}

impl HttpRefusal {
    /// The answer to `error`. A full queue always asks the client to wait
    /// (a hint-less client retrying at once would only keep it full); a
    /// retryable failure passes on the hint it has, if any.
    pub fn of(error: &PipelineError) -> Self {
        match error {
            PipelineError::Permanent { .. } => Self {
                status: 400,
                retry_after_secs: None,
            },
            PipelineError::Backpressure { retry_after, .. } => Self {
                status: 503,
                retry_after_secs: Some(retry_after.map_or(1, retry_after_secs)),
            },
            PipelineError::Retryable { retry_after, .. } => Self {
                status: 503,
                retry_after_secs: retry_after.map(retry_after_secs),
            },
        }
    }
}

/// The default time a client has to send a request's head over HTTP/1,
/// counted from its first byte.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time an HTTP connection may wait for a request (HTTP/1) or
/// have no stream open (HTTP/2) before it is closed (the Collector's).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest header list of one HTTP/2 request, in bytes (h2's default is 16 MiB).
#[cfg(feature = "axum")]
const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;

/// `http2_keepalive` of an HTTP listener: the server pings an HTTP/2
/// connection it has heard nothing from for `time`, and closes it when the
/// ping goes unanswered for `timeout` — a client that vanished gives back
/// its place among `max_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Keepalive {
    /// Ping after this long without a frame from the client; 0 = never.
    pub time: ConfigDuration,
    /// Close when a ping is not answered within this.
    pub timeout: ConfigDuration,
}

impl Default for Http2Keepalive {
    fn default() -> Self {
        Self {
            time: ConfigDuration::from_secs(60),
            timeout: ConfigDuration::from_secs(20),
        }
    }
}

impl crate::config::Validate for Http2Keepalive {
    fn validate(&self) -> Result<(), crate::config::ConfigError> {
        if !self.time.0.is_zero() && self.timeout.0.is_zero() {
            return Err(crate::config::ConfigError::at(
                "timeout",
                "must be more than 0 when `time` is set: how long a ping may go unanswered",
            ));
        }
        Ok(())
    }
}

/// How an HTTP listener treats slow and idle clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// HTTP/1: a request's head must be complete within this of its first
    /// byte. Over TLS, the handshake and the first bytes after it must come
    /// within it too.
    pub read_header_timeout: Duration,
    /// A request's body must be complete within this of its head; `None` =
    /// no limit.
    pub read_timeout: Option<Duration>,
    /// A connection waiting this long for a request (HTTP/1), or with no
    /// stream open this long (HTTP/2: GOAWAY), is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 pings to silent connections: `None` = none.
    pub http2_keepalive: Option<Http2Keepalive>,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            http2_keepalive: Some(Http2Keepalive::default()),
        }
    }
}

impl HttpTimeouts {
    /// The timeouts of a listener's settings, where 0 means "none" for
    /// `read_timeout` and `http2_keepalive.time`.
    pub fn new(
        read_header_timeout: ConfigDuration,
        read_timeout: ConfigDuration,
        idle_timeout: ConfigDuration,
        http2_keepalive: Http2Keepalive,
    ) -> Self {
        Self {
            read_header_timeout: read_header_timeout.0,
            read_timeout: (!read_timeout.0.is_zero()).then_some(read_timeout.0),
            idle_timeout: idle_timeout.0,
            http2_keepalive: (!http2_keepalive.time.0.is_zero()).then_some(http2_keepalive),
        }
    }

    /// Checks the settings [`Self::new`] takes (`read_timeout` may be 0),
    /// naming the key at fault: every HTTP listener's config validates with
    /// this.
    pub fn validate(
        read_header_timeout: ConfigDuration,
        idle_timeout: ConfigDuration,
        http2_keepalive: &Http2Keepalive,
    ) -> Result<(), crate::config::ConfigError> {
        use crate::config::{ConfigError, Validate, nested};
        if read_header_timeout.0.is_zero() {
            return Err(ConfigError::at(
                "read_header_timeout",
                "must be more than 0; the default is 10s",
            ));
        }
        if idle_timeout.0.is_zero() {
            return Err(ConfigError::at(
                "idle_timeout",
                "must be more than 0; the default is 1m",
            ));
        }
        nested("http2_keepalive", http2_keepalive.validate())
    }
}

/// Serves `router` on the connections of `listener` admitted under `limit`
/// until `shutdown` is cancelled, then lets requests in flight finish; over
/// TLS when `tls` is given (ALPN should offer `h2` and `http/1.1`).
///
/// Each connection is kept to `timeouts` by a [`Watched`] on its (decrypted)
/// bytes: a connection waiting for a request, or over HTTP/2 with no
/// stream open, is closed after `idle_timeout`; over HTTP/1 a request's
/// head must be complete within `read_header_timeout` of its first byte.
/// (`axum::serve` sets no timer, and hyper's own header timer would count
/// the wait for a request too.) Over TLS the handshake and the first bytes
/// of the first request must come within `read_header_timeout`; each
/// handshake runs in the connection's own task, so a slow one holds up no
/// other client.
#[cfg(feature = "axum")]
pub async fn serve_http(
    listener: TcpListener,
    limit: ConnectionLimit,
    router: axum::Router,
    timeouts: HttpTimeouts,
    tls: Option<Arc<ServerTls>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(timeouts.http2_keepalive.map(|k| k.time.0))
        .max_header_list_size(MAX_HEADER_LIST_SIZE);
    if let Some(keepalive) = timeouts.http2_keepalive {
        builder.http2().keep_alive_timeout(keepalive.timeout.0);
    }
    let rules = ConnectionRules {
        idle_timeout: Some(timeouts.idle_timeout),
        read_header_timeout: Some(timeouts.read_header_timeout),
        ping_policy: None,
    };
    let router = match timeouts.read_timeout {
        Some(read_timeout) => router.layer(axum::middleware::map_request(
            move |request: axum::extract::Request| async move {
                request.map(|body| axum::body::Body::new(DeadlineBody::new(body, read_timeout)))
            },
        )),
        None => router,
    };
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (connection, client) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = limit.accept(&listener) => accepted,
        };
        let builder = builder.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let telemetry = limit.telemetry();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    if let Some(connection) = tls
                        .accept(connection, client, timeouts.read_header_timeout)
                        .await
                    {
                        let connection = Watched::new(connection, rules).with_telemetry(telemetry);
                        serve_http_connection(builder, connection, router, client, watcher).await;
                    }
                }
                None => {
                    let connection = Watched::new(connection, rules).with_telemetry(telemetry);
                    serve_http_connection(builder, connection, router, client, watcher).await;
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A request body that fails once `read_timeout` has passed before its end.
#[cfg(feature = "axum")]
struct DeadlineBody {
    inner: axum::body::Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    read_timeout: Duration,
}

#[cfg(feature = "axum")]
impl DeadlineBody {
    fn new(inner: axum::body::Body, read_timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(read_timeout)),
            read_timeout,
        }
    }
}

#[cfg(feature = "axum")]
impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if std::future::Future::poll(self.deadline.as_mut(), cx).is_ready() {
            let message = format!(
                "the body did not arrive within read_timeout ({:?})",
                self.read_timeout
            );
            return Poll::Ready(Some(Err(axum::Error::new(message))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// One HTTP connection, HTTP/1 or HTTP/2 as the client speaks. Handlers
/// learn the client's address (`ConnectInfo`), e.g. to log a refusal.
#[cfg(feature = "axum")]
async fn serve_http_connection<IO>(
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    io: IO,
    router: axum::Router,
    client: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let router = tower::ServiceExt::map_request(router, move |mut request: http::Request<_>| {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(client));
        request
    });
    let service = hyper_util::service::TowerToHyperService::new(router);
    let served = builder
        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service)
        .into_owned();
    // A client that goes away mid-request is its own business.
    let _ = watcher.watch(served).await;
}

/// The client's address of a request served by [`serve_http`] or a tonic
/// server on [`admitted_incoming`], from its extensions; `None` when unknown.
pub fn client_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(*addr);
    }
    #[cfg(feature = "tonic")]
    if let Some(info) = extensions.get::<tonic::transport::server::TcpConnectInfo>() {
        return info.remote_addr();
    }
    let _ = extensions;
    None
}

#[cfg(feature = "tonic")]
impl tonic::transport::server::Connected for Admitted<TcpStream> {
    type ConnectInfo = <TcpStream as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(feature = "tonic")]
impl tonic::transport::server::Connected for TlsConnection<Admitted<TcpStream>> {
    type ConnectInfo = <TcpStream as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().io.connect_info()
    }
}

/// The connections of `listener` admitted under `limit` and kept to
/// `rules`, as the incoming stream tonic's server takes.
#[cfg(feature = "tonic")]
pub fn admitted_incoming(
    listener: TcpListener,
    limit: ConnectionLimit,
    rules: ConnectionRules,
) -> impl futures::Stream<Item = io::Result<Watched<Admitted<TcpStream>>>> + Send + 'static {
    futures::stream::unfold((listener, limit), move |(listener, limit)| async move {
        let (connection, _) = limit.accept(&listener).await;
        let connection = Watched::new(connection, rules).with_telemetry(limit.telemetry());
        Some((Ok(connection), (listener, limit)))
    })
}

/// The default time a gRPC client has for the TLS handshake and the first
/// bytes after it (gRPC has no `read_header_timeout`).
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections of `listener` admitted under `limit` and through the
/// TLS handshake of `tls` within `handshake_timeout`, as the incoming
/// stream tonic's server takes, each kept to `rules` from the end of its
/// handshake. Each handshake runs in a task of its own,
/// so a client that stalls in it delays no one else; it holds its
/// connection slot until the timeout. The listener is closed when the
/// stream is dropped.
#[cfg(feature = "tonic")]
pub fn tls_incoming(
    listener: TcpListener,
    limit: ConnectionLimit,
    tls: Arc<ServerTls>,
    handshake_timeout: Duration,
    rules: ConnectionRules,
) -> impl futures::Stream<Item = io::Result<Watched<TlsConnection<Admitted<TcpStream>>>>> + Send + 'static
{
    // Bounded by the connection limit anyway: every item holds a slot.
    let (ready, incoming) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (connection, client) = tokio::select! {
                () = ready.closed() => break,
                accepted = limit.accept(&listener) => accepted,
            };
            let (ready, tls) = (ready.clone(), tls.clone());
            let telemetry = limit.telemetry();
            tokio::spawn(async move {
                if let Some(connection) = tls.accept(connection, client, handshake_timeout).await {
                    let connection = Watched::new(connection, rules).with_telemetry(telemetry);
                    let _ = ready.send(Ok(connection)).await;
                }
            });
        }
    });
    futures::stream::unfold(incoming, |mut incoming| async move {
        incoming.recv().await.map(|next| (next, incoming))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn connections_past_the_limit_are_closed_at_once_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let telemetry = crate::telemetry::Telemetry::new(crate::telemetry::MetricsLevel::Normal);
        let receiver = telemetry.receiver(&crate::ComponentId::new("otlp", None), "grpc");
        let limit = ConnectionLimit::new(2, "test").with_telemetry(Arc::new(receiver));
        let clients: Vec<TcpStream> = {
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(TcpStream::connect(addr).await.unwrap());
            }
            v
        };
        let first = limit.accept(&listener).await.0;
        let second = limit.accept(&listener).await.0;
        // The third is accepted and closed while the server waits for a fourth.
        let waiting = tokio::spawn({
            let limit = limit.clone();
            async move { limit.accept(&listener).await.0 }
        });
        let mut third = clients.into_iter().nth(2).unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(third.read(&mut buf).await.unwrap(), 0, "closed");
        assert_eq!(limit.refused(), 1);
        assert_eq!(
            telemetry.sample(
                "auditcol_receiver_refused_connections_total",
                &[("receiver", "otlp"), ("transport", "grpc")]
            ),
            Some(1.0)
        );
        // A place freed is a place for the next client.
        drop(first);
        let _fourth = TcpStream::connect(addr).await.unwrap();
        let admitted = waiting.await.unwrap();
        assert!(admitted.get_ref().nodelay().unwrap());
        drop(second);
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds_and_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn endpoints_are_ip_localhost_or_any() {
        assert_eq!(
            parse_endpoint("127.0.0.1:4317").unwrap().to_string(),
            "127.0.0.1:4317"
        );
        assert_eq!(
            parse_endpoint("[::1]:4317").unwrap().to_string(),
            "[::1]:4317"
        );
        assert_eq!(
            parse_endpoint("localhost:8088").unwrap().to_string(),
            "127.0.0.1:8088"
        );
        assert_eq!(parse_endpoint(":8088").unwrap().to_string(), "0.0.0.0:8088");
        for bad in ["example.com:80", "127.0.0.1", "127.0.0.1:99999", ""] {
            assert!(parse_endpoint(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn refusals_map_to_400_or_503_with_retry_after_when_due() {
        let cases = [
            (PipelineError::permanent("x"), 400, None),
            (PipelineError::backpressure("x", None), 503, Some(1)),
            (
                PipelineError::backpressure("x", Some(Duration::from_millis(1500))),
                503,
                Some(2),
            ),
            (PipelineError::retryable("x"), 503, None),
            (
                PipelineError::Retryable {
                    message: "x".into(),
                    retry_after: Some(Duration::from_secs(5)),
                },
                503,
                Some(5),
            ),
        ];
        for (error, status, retry_after_secs) in cases {
            assert_eq!(
                HttpRefusal::of(&error),
                HttpRefusal {
                    status,
                    retry_after_secs
                },
                "{error:?}"
            );
        }
    }
}
