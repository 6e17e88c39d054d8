//! Helpers shared by the component crates' tests: a plain HTTP/1.1 client
//! that sends exactly what a test says ([`send`]), and a capture of what
//! `tracing` logs ([`CapturedLog`]). Dev-only; no component depends on it
//! outside its tests.

pub mod pki;
pub mod tls;

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics, showing the body, when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// The `error` string of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {}", self.text()))
            .to_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request on a fresh HTTP/1.1 connection and reads the answer.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

/// What `tracing` logs on this thread while the guard of [`CapturedLog::start`] lives.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

thread_local! {
    /// Where this thread's log lines go, if anywhere.
    static CAPTURE: RefCell<Option<CapturedLog>> = const { RefCell::new(None) };
}

/// Whether the routing subscriber (see [`CapturedLog::start`]) is the
/// process's global one.
static GLOBAL: OnceLock<bool> = OnceLock::new();

/// Ends a capture; see [`CapturedLog::start`].
pub struct CaptureGuard {
    previous: Option<CapturedLog>,
    _scoped: Option<tracing::subscriber::DefaultGuard>,
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CAPTURE.with(|c| *c.borrow_mut() = previous);
    }
}

impl CapturedLog {
    /// Captures this thread's logs (INFO and above) until the guard is dropped.
    ///
    /// One subscriber, the process's global one, writes every thread's
    /// lines to that thread's capture (or nowhere). A subscriber set per
    /// thread instead lost lines now and then: `tracing` caches per call
    /// site whether anyone listens, and a test thread without a capture that
    /// reached a call site first could leave it marked "never".
    pub fn start() -> (Self, CaptureGuard) {
        let captured = Self::default();
        let global = *GLOBAL.get_or_init(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ThreadCapture)
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_global_default(subscriber).is_ok()
        });
        let scoped = (!global).then(|| {
            // Another global subscriber is in place: fall back to one for
            // this thread.
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            let guard = tracing::subscriber::set_default(subscriber);
            tracing::callsite::rebuild_interest_cache();
            guard
        });
        let previous = CAPTURE.with(|c| c.borrow_mut().replace(captured.clone()));
        (
            captured,
            CaptureGuard {
                previous,
                _scoped: scoped,
            },
        )
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// The global subscriber's writer: the current thread's capture, if any.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(captured) = c.borrow_mut().as_mut() {
                let _ = captured.write(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
