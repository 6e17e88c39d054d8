//! Rules on a server connection that hyper and h2 do not enforce, kept by
//! watching the bytes that pass: [`Watched`] wraps a connection (the
//! decrypted stream when over TLS) and reads only what it must — the
//! HTTP/2 preface, the 9-byte header of each frame in both directions
//! (payloads are skipped, never copied), and over HTTP/1 the bytes of a
//! request's head up to its blank line.
//!
//! - **Idle connections** ([`ConnectionRules::idle_timeout`]): over HTTP/1,
//!   a connection waiting for a request's first byte — since it was
//!   accepted, or since the last byte of the previous response — is closed
//!   after `idle_timeout`. Over HTTP/2, a connection with no stream open
//!   for that long is sent GOAWAY (NO_ERROR, naming the last stream it took)
//!   and closed, as grpc-go does for `max_connection_idle` and Go's
//!   `net/http` for `IdleTimeout`. A stream is open from the client's
//!   HEADERS until the server ends it (END_STREAM on its HEADERS or DATA) or
//!   either side resets it.
//! - **Slow request heads** ([`ConnectionRules::read_header_timeout`]):
//!   over HTTP/1, a request's head must be complete within this of its
//!   first byte.
//! - **Ping floods** ([`ConnectionRules::ping_policy`]), as grpc-go's
//!   `keepalive.EnforcementPolicy`: a client PING that comes sooner than
//!   `min_time` after the previous one (or sooner than two hours when no
//!   stream is open and `permit_without_stream` is false) is a strike; the
//!   server's sending HEADERS or DATA forgives all strikes at the next ping.
//!   Past two strikes the connection is sent GOAWAY ENHANCE_YOUR_CALM with
//!   the debug data `too_many_pings` and closed.
//!
//! Closing: the GOAWAY is written between two of the server's frames, the
//! write side is shut (FIN), and what the client still sends is read and
//! dropped for up to a second, so that the client reads the GOAWAY rather
//! than a reset; the server then sees end of input. Bytes read after the
//! decision never reach the server, so no stream past the GOAWAY's last
//! stream is ever started.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::telemetry::{CloseReason, ReceiverTelemetry};

/// What a listener asks of its connections; see the module documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionRules {
    /// Close a connection with no request in progress after this long.
    pub idle_timeout: Option<Duration>,
    /// Over HTTP/1, a request's head must be complete within this of its
    /// first byte.
    pub read_header_timeout: Option<Duration>,
    /// Police the client's HTTP/2 pings.
    pub ping_policy: Option<PingPolicy>,
}

/// How often a client may ping, as grpc-go's `keepalive.EnforcementPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingPolicy {
    /// Least time between two client pings.
    pub min_time: Duration,
    /// Whether pings are allowed (at `min_time`) with no stream open.
    pub permit_without_stream: bool,
}

/// The HTTP/2 client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Pings too soon tolerated before the connection is closed (grpc-go's).
const MAX_PING_STRIKES: u8 = 2;
/// With no stream open and pings not permitted without one, the least time
/// between pings (grpc-go's `defaultPingTimeout`).
const PING_WITHOUT_STREAM_MIN_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// How long a closing connection waits for its GOAWAY to go out and the
/// client to close its side.
const LINGER: Duration = Duration::from_secs(1);

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
/// END_STREAM on DATA and HEADERS; ACK on PING.
const END_STREAM_OR_ACK: u8 = 0x1;

const NO_ERROR: u32 = 0x0;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The header of one HTTP/2 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHeader {
    kind: u8,
    flags: u8,
    stream: u32,
}

/// Finds frame headers in a byte stream delivered in pieces of any size.
#[derive(Debug, Clone, Copy, Default)]
struct FrameReader {
    header: [u8; 9],
    have: u8,
    /// Payload bytes of the current frame still to pass.
    skip: usize,
}

impl FrameReader {
    /// Passes `bytes`, calling `on_header` for each frame header completed.
    fn feed(&mut self, mut bytes: &[u8], mut on_header: impl FnMut(FrameHeader)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let have = usize::from(self.have);
            let n = (9 - have).min(bytes.len());
            self.header[have..have + n].copy_from_slice(&bytes[..n]);
            self.have += n as u8;
            bytes = &bytes[n..];
            if self.have == 9 {
                self.have = 0;
                let h = &self.header;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                on_header(FrameHeader {
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                });
            }
        }
    }

    /// Whether the bytes so far end exactly at the end of a frame.
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }
}

/// What the watcher knows of an HTTP/2 connection.
#[derive(Debug)]
struct H2 {
    inbound: FrameReader,
    outbound: FrameReader,
    /// Streams the client opened that the server has not ended.
    open: Vec<u32>,
    /// The highest stream the client opened.
    last_stream: u32,
    /// Since when no stream is open.
    idle_since: Instant,
    pings: Option<PingPolicy>,
    last_ping: Option<Instant>,
    strikes: u8,
    /// The server sent HEADERS or DATA since the last client ping.
    forgive: bool,
}

impl H2 {
    fn new(idle_since: Instant, pings: Option<PingPolicy>) -> Self {
        Self {
            inbound: FrameReader::default(),
            outbound: FrameReader::default(),
            open: Vec::new(),
            last_stream: 0,
            idle_since,
            pings,
            last_ping: None,
            strikes: 0,
            forgive: false,
        }
    }

    /// Bytes from the client; true when it has pinged too often.
    fn client_bytes(&mut self, bytes: &[u8]) -> bool {
        let mut reader = self.inbound;
        let mut calm = false;
        reader.feed(bytes, |frame| calm |= self.client_frame(frame));
        self.inbound = reader;
        calm
    }

    fn client_frame(&mut self, frame: FrameHeader) -> bool {
        match frame.kind {
            HEADERS if frame.stream % 2 == 1 && frame.stream > self.last_stream => {
                self.last_stream = frame.stream;
                self.open.push(frame.stream);
            }
            RST_STREAM => self.end(frame.stream),
            PING if frame.flags & END_STREAM_OR_ACK == 0 => return self.ping(),
            _ => {}
        }
        false
    }

    /// A client ping, judged as grpc-go's server does; true past the strikes.
    fn ping(&mut self) -> bool {
        let now = Instant::now();
        let last = self.last_ping.replace(now);
        if std::mem::take(&mut self.forgive) {
            self.strikes = 0;
            return false;
        }
        let Some(policy) = self.pings else {
            return false;
        };
        let min_time = if self.open.is_empty() && !policy.permit_without_stream {
            PING_WITHOUT_STREAM_MIN_TIME
        } else {
            policy.min_time
        };
        if last.is_some_and(|last| now < last + min_time) {
            self.strikes = self.strikes.saturating_add(1);
        }
        self.strikes > MAX_PING_STRIKES
    }

    /// Bytes from the server.
    fn server_bytes(&mut self, bytes: &[u8]) {
        let mut reader = self.outbound;
        reader.feed(bytes, |frame| self.server_frame(frame));
        self.outbound = reader;
    }

    fn server_frame(&mut self, frame: FrameHeader) {
        match frame.kind {
            HEADERS | DATA => {
                self.forgive = true;
                if frame.flags & END_STREAM_OR_ACK != 0 {
                    self.end(frame.stream);
                }
            }
            RST_STREAM => self.end(frame.stream),
            _ => {}
        }
    }

    fn end(&mut self, stream: u32) {
        if let Some(i) = self.open.iter().position(|&s| s == stream) {
            self.open.swap_remove(i);
            if self.open.is_empty() {
                self.idle_since = Instant::now();
            }
        }
    }

    /// GOAWAY naming the last stream the server took.
    fn goaway(&self, code: u32, debug: &[u8]) -> Vec<u8> {
        let len = 8 + debug.len();
        let mut frame = Vec::with_capacity(9 + len);
        frame.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&[GOAWAY, 0, 0, 0, 0, 0]);
        frame.extend_from_slice(&self.last_stream.to_be_bytes());
        frame.extend_from_slice(&code.to_be_bytes());
        frame.extend_from_slice(debug);
        frame
    }
}

/// Where an HTTP/1 connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum H1 {
    /// Waiting for a request's first byte.
    Idle,
    /// Reading a request's head; `line` = bytes on the current line.
    Head { line: u32 },
    /// The head is read: the body and the answer are the server's business.
    Rest,
}

#[derive(Debug)]
enum Protocol {
    /// Nothing yet, or the first `matched` bytes of the HTTP/2 preface.
    Unknown {
        matched: usize,
    },
    Http1(H1),
    Http2(Box<H2>),
}

#[derive(Debug)]
enum Closing {
    Open,
    /// GOAWAY to write once the server's frame in progress is out.
    Goaway {
        frame: Vec<u8>,
        written: usize,
    },
    Flush,
    Shutdown,
    /// Reading and dropping what the client still sends.
    Linger,
    Closed,
}

/// A connection kept to [`ConnectionRules`]; see the module documentation.
pub struct Watched<IO> {
    io: IO,
    rules: ConnectionRules,
    protocol: Protocol,
    /// Since when the connection waits for a request (not HTTP/2).
    idle_since: Instant,
    /// When the request head being read began.
    head_since: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
    closing: Closing,
    /// When a closing connection is closed at the latest.
    close_by: Option<Instant>,
    /// Bytes read from the connection and not yet passed on: see
    /// [`READ_AHEAD`]. Empty (and holding no memory) between reads.
    ahead: BytesMut,
    /// Where closes for a broken rule are counted.
    telemetry: Option<Arc<ReceiverTelemetry>>,
}

/// How much a read asks of the connection when the server's own buffer is
/// smaller. h2 reads into a buffer sized for the frame it is in (16 KiB
/// frames by default), so a 150 KB request took 17 `recvfrom` calls;
/// reading ahead into this buffer takes 3, and the bytes are passed on
/// from memory. The buffer lives only until it is drained, so an idle
/// connection holds none.
const READ_AHEAD: usize = 64 * 1024;

impl<IO> std::fmt::Debug for Watched<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("rules", &self.rules)
            .field("protocol", &self.protocol)
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl<IO> Watched<IO> {
    /// Watches `io`, a connection accepted just now.
    pub fn new(io: IO, rules: ConnectionRules) -> Self {
        let now = Instant::now();
        Self {
            io,
            rules,
            protocol: Protocol::Unknown { matched: 0 },
            idle_since: now,
            head_since: now,
            timer: None,
            armed: None,
            closing: Closing::Open,
            close_by: None,
            ahead: BytesMut::new(),
            telemetry: None,
        }
    }

    /// Counts the closes for a broken rule in a receiver's telemetry
    /// (`auditcol_receiver_closed_connections`).
    pub fn with_telemetry(mut self, telemetry: Option<Arc<ReceiverTelemetry>>) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Begins `closing` for a broken rule, counted once per connection.
    fn close_for(&mut self, reason: CloseReason, closing: Closing) {
        if matches!(self.closing, Closing::Open)
            && let Some(telemetry) = &self.telemetry
        {
            telemetry.closed_connection(reason);
        }
        self.begin_close(closing);
    }

    /// The connection itself.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Takes in bytes the client sent.
    fn on_read(&mut self, bytes: &[u8]) {
        match &mut self.protocol {
            Protocol::Unknown { matched } => {
                let n = (PREFACE.len() - *matched).min(bytes.len());
                if bytes[..n] == PREFACE[*matched..*matched + n] {
                    if *matched == 0 {
                        self.head_since = Instant::now();
                    }
                    *matched += n;
                    if *matched == PREFACE.len() {
                        let mut h2 = H2::new(self.idle_since, self.rules.ping_policy);
                        let calm = h2.client_bytes(&bytes[n..]);
                        self.protocol = Protocol::Http2(Box::new(h2));
                        if calm {
                            self.too_many_pings();
                        }
                    }
                } else {
                    if *matched == 0 {
                        self.head_since = Instant::now();
                    }
                    self.protocol = Protocol::Http1(H1::Head { line: 0 });
                    self.on_read(bytes);
                }
            }
            Protocol::Http1(phase) => {
                if *phase == H1::Idle {
                    *phase = H1::Head { line: 0 };
                    self.head_since = Instant::now();
                }
                if let H1::Head { line } = phase {
                    *phase = head_bytes(*line, bytes);
                }
            }
            Protocol::Http2(h2) => {
                if h2.client_bytes(bytes) {
                    self.too_many_pings();
                }
            }
        }
    }

    /// Takes in bytes the server wrote.
    fn on_write(&mut self, bytes: &[u8]) {
        match &mut self.protocol {
            Protocol::Http1(phase) => {
                // An interim answer (100 Continue) comes before the body.
                let interim = *phase == H1::Rest && bytes.starts_with(b"HTTP/1.1 1");
                if !matches!(phase, H1::Head { .. }) && !interim {
                    *phase = H1::Idle;
                    self.idle_since = Instant::now();
                }
            }
            Protocol::Http2(h2) => h2.server_bytes(bytes),
            Protocol::Unknown { .. } => {}
        }
    }

    fn too_many_pings(&mut self) {
        if let Protocol::Http2(h2) = &self.protocol {
            tracing::debug!("a client pinged too often: sending GOAWAY ENHANCE_YOUR_CALM");
            let frame = h2.goaway(ENHANCE_YOUR_CALM, b"too_many_pings");
            self.close_for(
                CloseReason::TooManyPings,
                Closing::Goaway { frame, written: 0 },
            );
        }
    }

    fn begin_close(&mut self, closing: Closing) {
        if matches!(self.closing, Closing::Open) {
            self.closing = closing;
        }
    }

    /// When the connection breaks a rule if nothing comes before, and which.
    fn deadline(&self) -> Option<(Instant, CloseReason)> {
        let idle = |since: Instant| {
            self.rules
                .idle_timeout
                .map(|t| (since + t, CloseReason::Idle))
        };
        let head = || match self.rules.read_header_timeout {
            Some(t) => Some((self.head_since + t, CloseReason::ReadHeaderTimeout)),
            None => idle(self.idle_since),
        };
        match &self.protocol {
            Protocol::Unknown { matched: 0 } | Protocol::Http1(H1::Idle) => idle(self.idle_since),
            Protocol::Unknown { .. } | Protocol::Http1(H1::Head { .. }) => head(),
            Protocol::Http1(H1::Rest) => None,
            Protocol::Http2(h2) if h2.open.is_empty() => idle(h2.idle_since),
            Protocol::Http2(_) => None,
        }
    }

    /// Polls the timer of the rule due next; true when it is broken (and
    /// the connection's closing begun).
    fn poll_rules(&mut self, cx: &mut Context<'_>) -> bool {
        let Some((deadline, reason)) = self.deadline() else {
            return false;
        };
        if !self.poll_timer(cx, deadline) {
            return false;
        }
        let closing = match &self.protocol {
            Protocol::Http2(h2) => Closing::Goaway {
                frame: h2.goaway(NO_ERROR, b"max_idle"),
                written: 0,
            },
            // Nothing of a request is lost: end the input, the server closes.
            _ => Closing::Closed,
        };
        self.close_for(reason, closing);
        true
    }

    /// True once `deadline` has passed; else the task is woken then.
    fn poll_timer(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        if self.armed != Some(deadline) {
            self.armed = Some(deadline);
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }

    fn outbound_at_boundary(&self) -> bool {
        match &self.protocol {
            Protocol::Http2(h2) => h2.outbound.at_boundary(),
            _ => true,
        }
    }
}

/// Follows a request head over `bytes`: `Rest` once its blank line has
/// come (CRLF or bare LF line ends; blank lines before the request line do
/// not count), else the length of the line it ends in.
fn head_bytes(mut line: u32, bytes: &[u8]) -> H1 {
    // `line` counts from 1 once the request line has begun, so that a
    // blank line before it is not taken for the end of the head.
    for &b in bytes {
        match b {
            b'\n' if line == 1 => return H1::Rest,
            b'\n' if line > 1 => line = 1,
            b'\n' | b'\r' => {}
            _ => line = line.saturating_add(1).max(2),
        }
    }
    H1::Head { line }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Watched<IO> {
    /// Moves the closing on; ready when the server may see end of input.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !matches!(self.closing, Closing::Closed) {
            let deadline = *self.close_by.get_or_insert_with(|| Instant::now() + LINGER);
            if self.poll_timer(cx, deadline) {
                self.closing = Closing::Closed;
            }
        }
        loop {
            let at_boundary = self.outbound_at_boundary();
            match &mut self.closing {
                Closing::Open | Closing::Closed => return Poll::Ready(()),
                Closing::Goaway { frame, written } => {
                    if *written == 0 && !at_boundary {
                        // The server's frame in progress is written first;
                        // its write wakes the task.
                        return Poll::Pending;
                    }
                    while *written < frame.len() {
                        match ready!(Pin::new(&mut self.io).poll_write(cx, &frame[*written..])) {
                            Ok(n) if n > 0 => *written += n,
                            _ => {
                                self.closing = Closing::Closed;
                                return Poll::Ready(());
                            }
                        }
                    }
                    self.closing = Closing::Flush;
                }
                Closing::Flush => {
                    let _ = ready!(Pin::new(&mut self.io).poll_flush(cx));
                    self.closing = Closing::Shutdown;
                }
                Closing::Shutdown => {
                    let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                    self.closing = Closing::Linger;
                }
                Closing::Linger => {
                    let mut scratch = [0u8; 1024];
                    let mut dropped = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut self.io).poll_read(cx, &mut dropped)) {
                        Ok(()) if !dropped.filled().is_empty() => {}
                        _ => self.closing = Closing::Closed,
                    }
                }
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !matches!(this.closing, Closing::Open) {
            // What was read ahead never reaches the server now.
            this.ahead = BytesMut::new();
            return this.poll_close(cx).map(Ok);
        }
        if this.ahead.is_empty() && buf.remaining() < READ_AHEAD {
            this.ahead.reserve(READ_AHEAD);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.ahead) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.ahead = BytesMut::new();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    this.ahead = BytesMut::new();
                    return if this.poll_rules(cx) {
                        this.poll_close(cx).map(Ok)
                    } else {
                        Poll::Pending
                    };
                }
            }
            if this.ahead.is_empty() {
                // End of input.
                this.ahead = BytesMut::new();
                return Poll::Ready(Ok(()));
            }
        }
        if !this.ahead.is_empty() {
            let n = buf.remaining().min(this.ahead.len());
            let read = this.ahead.split_to(n);
            if this.ahead.is_empty() {
                // Drained: the memory goes back once `read` is dropped.
                this.ahead = BytesMut::new();
            }
            buf.put_slice(&read);
            this.passed_on(&read, cx);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                this.passed_on(read, cx);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.poll_rules(cx) => this.poll_close(cx).map(Ok),
            other => other,
        }
    }
}

impl<IO> Watched<IO> {
    /// `read` goes to the server now.
    fn passed_on(&mut self, read: &[u8], cx: &mut Context<'_>) {
        if !read.is_empty() {
            self.on_read(read);
            if !matches!(self.closing, Closing::Open) {
                // The close begins at the next read.
                cx.waker().wake_by_ref();
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing_swallows_writes() {
            let _ = this.poll_close(cx);
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.on_write(&buf[..n]);
        this.after_write(cx);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing_swallows_writes() {
            let _ = this.poll_close(cx);
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for buf in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(buf.len());
            this.on_write(&buf[..take]);
            left -= take;
        }
        this.after_write(cx);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing_swallows_writes() {
            let _ = this.poll_close(cx);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing_swallows_writes() {
            let _ = this.poll_close(cx);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<IO> Watched<IO> {
    /// Once the GOAWAY may go (or has gone), the server's writes go nowhere:
    /// the connection is closing and the client has been told.
    fn closing_swallows_writes(&self) -> bool {
        match &self.closing {
            Closing::Open => false,
            Closing::Goaway { written: 0, .. } => self.outbound_at_boundary(),
            _ => true,
        }
    }

    /// After the server wrote: an answer may have left the connection idle,
    /// and the server may not read again before the client sends something,
    /// so the idle timer is armed here too (the same task reads and writes);
    /// and once the server's frame in progress is out, a GOAWAY waiting for
    /// it can go.
    fn after_write(&mut self, cx: &mut Context<'_>) {
        if matches!(self.closing, Closing::Open) {
            if self.deadline().is_some() && self.poll_rules(cx) {
                cx.waker().wake_by_ref();
            }
        } else if matches!(self.closing, Closing::Goaway { written: 0, .. })
            && self.outbound_at_boundary()
        {
            cx.waker().wake_by_ref();
        }
    }
}

#[cfg(feature = "tonic")]
impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Watched<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests;
