//! The watcher on byte sequences split every way, and on a real (in-memory)
//! connection for the closing.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload_len: usize) -> Vec<u8> {
    let mut f = (payload_len as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend(std::iter::repeat_n(0xaa, payload_len));
    f
}

fn header(kind: u8, flags: u8, stream: u32) -> FrameHeader {
    FrameHeader {
        kind,
        flags,
        stream,
    }
}

const SETTINGS: u8 = 0x4;

/// A receiver's telemetry, and how many connections it counted as closed
/// for `reason`.
fn close_counter() -> (Arc<ReceiverTelemetry>, impl Fn(&str) -> f64) {
    let telemetry = crate::telemetry::Telemetry::new(crate::telemetry::MetricsLevel::Normal);
    let receiver = Arc::new(telemetry.receiver(&crate::ComponentId::new("otlp", None), "http"));
    let closed = move |reason: &str| {
        telemetry
            .sample(
                "auditcol_receiver_closed_connections_total",
                &[
                    ("receiver", "otlp"),
                    ("transport", "http"),
                    ("reason", reason),
                ],
            )
            .unwrap_or(0.0)
    };
    (receiver, closed)
}

#[test]
fn frame_headers_are_found_however_the_bytes_are_split() {
    let frames = [
        (header(SETTINGS, 0, 0), 6),
        (header(HEADERS, 0x4, 1), 30),
        (header(DATA, END_STREAM_OR_ACK, 1), 100),
        (header(PING, 0, 0), 8),
        (header(RST_STREAM, 0, 3), 4),
        (header(DATA, 0, 5), 0),
    ];
    let bytes: Vec<u8> = frames
        .iter()
        .flat_map(|(h, len)| frame(h.kind, h.flags, h.stream, *len))
        .collect();
    let expected: Vec<FrameHeader> = frames.iter().map(|(h, _)| *h).collect();
    for piece in 1..=bytes.len() {
        let mut reader = FrameReader::default();
        let mut seen = Vec::new();
        for chunk in bytes.chunks(piece) {
            reader.feed(chunk, |h| seen.push(h));
        }
        assert_eq!(seen, expected, "pieces of {piece}");
        assert!(reader.at_boundary());
    }
    // Mid-frame is not a boundary: neither within a header nor a payload.
    let mut reader = FrameReader::default();
    reader.feed(&bytes[..4], |_| {});
    assert!(!reader.at_boundary());
    reader.feed(&bytes[4..12], |_| {});
    assert!(!reader.at_boundary());
}

#[test]
fn the_reserved_bit_of_a_stream_id_is_ignored() {
    let mut bytes = frame(HEADERS, 0, 1, 0);
    bytes[5] |= 0x80;
    let mut seen = Vec::new();
    FrameReader::default().feed(&bytes, |h| seen.push(h.stream));
    assert_eq!(seen, [1]);
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_open_from_the_client_headers_until_the_server_ends_it_or_a_side_resets_it() {
    let start = Instant::now();
    let mut h2 = H2::new(start, None);
    let mut client = frame(HEADERS, 0x4, 1, 10);
    client.extend(frame(DATA, END_STREAM_OR_ACK, 1, 10));
    client.extend(frame(HEADERS, 0x4, 3, 10));
    // Split in the middle of the second frame's header.
    h2.client_bytes(&client[..23]);
    h2.client_bytes(&client[23..]);
    // The client's END_STREAM leaves the stream open: the answer is due.
    assert_eq!(h2.open, [1, 3]);
    assert_eq!(h2.last_stream, 3);

    tokio::time::advance(Duration::from_secs(5)).await;
    let mut server = frame(HEADERS, 0x4, 1, 5);
    server.extend(frame(DATA, 0, 1, 5));
    h2.server_bytes(&server);
    assert_eq!(h2.open, [1, 3], "no END_STREAM yet");
    h2.server_bytes(&frame(HEADERS, 0x4 | END_STREAM_OR_ACK, 1, 5));
    assert_eq!(h2.open, [3]);
    assert_eq!(h2.idle_since, start, "still busy");

    tokio::time::advance(Duration::from_secs(5)).await;
    h2.client_bytes(&frame(RST_STREAM, 0, 3, 4));
    assert!(h2.open.is_empty());
    assert_eq!(h2.idle_since, start + Duration::from_secs(10));

    // A server reset ends a stream too; HEADERS on an old stream (trailers)
    // opens nothing.
    h2.client_bytes(&frame(HEADERS, 0x4, 5, 1));
    h2.server_bytes(&frame(RST_STREAM, 0, 5, 4));
    h2.client_bytes(&frame(HEADERS, 0x4 | END_STREAM_OR_ACK, 5, 1));
    assert!(h2.open.is_empty());
    assert_eq!(h2.last_stream, 5);
}

fn ping() -> Vec<u8> {
    frame(PING, 0, 0, 8)
}

#[tokio::test(start_paused = true)]
async fn pings_sooner_than_min_time_are_tolerated_twice_then_refused() {
    let policy = PingPolicy {
        min_time: Duration::from_secs(10),
        permit_without_stream: true,
    };
    let mut h2 = H2::new(Instant::now(), Some(policy));
    assert!(!h2.client_bytes(&ping()), "the first ping is never early");
    assert!(!h2.client_bytes(&ping()), "strike 1");
    assert!(!h2.client_bytes(&ping()), "strike 2");
    // Acknowledgements of the server's own pings do not count.
    assert!(!h2.client_bytes(&frame(PING, END_STREAM_OR_ACK, 0, 8)));
    assert!(h2.client_bytes(&ping()), "strike 3");

    // Pings min_time apart are never strikes, however many.
    let mut h2 = H2::new(Instant::now(), Some(policy));
    for _ in 0..10 {
        assert!(!h2.client_bytes(&ping()));
        tokio::time::advance(policy.min_time).await;
    }
}

#[tokio::test(start_paused = true)]
async fn headers_or_data_from_the_server_forgive_the_strikes() {
    let policy = PingPolicy {
        min_time: Duration::from_secs(10),
        permit_without_stream: true,
    };
    let mut h2 = H2::new(Instant::now(), Some(policy));
    for _ in 0..20 {
        // As a client estimating bandwidth does: a ping after each answer.
        assert!(!h2.client_bytes(&ping()));
        assert!(!h2.client_bytes(&ping()));
        h2.server_bytes(&frame(DATA, 0, 1, 100));
    }
    // Other frames from the server forgive nothing.
    h2.server_bytes(&frame(SETTINGS, 0, 0, 0));
    assert!(!h2.client_bytes(&ping()), "forgiven by the DATA");
    assert!(!h2.client_bytes(&ping()));
    assert!(!h2.client_bytes(&ping()));
    assert!(h2.client_bytes(&ping()));
}

#[tokio::test(start_paused = true)]
async fn without_permit_without_stream_pings_need_an_open_stream() {
    let policy = PingPolicy {
        min_time: Duration::from_secs(10),
        permit_without_stream: false,
    };
    // With no stream open, even pings min_time apart are strikes.
    let mut h2 = H2::new(Instant::now(), Some(policy));
    let mut refused = false;
    for _ in 0..4 {
        refused = h2.client_bytes(&ping());
        tokio::time::advance(policy.min_time).await;
    }
    assert!(refused);
    // With one open they are fine.
    let mut h2 = H2::new(Instant::now(), Some(policy));
    h2.client_bytes(&frame(HEADERS, 0x4, 1, 3));
    for _ in 0..10 {
        assert!(!h2.client_bytes(&ping()));
        tokio::time::advance(policy.min_time).await;
    }
    // Without a policy nothing is ever refused.
    let mut h2 = H2::new(Instant::now(), None);
    for _ in 0..100 {
        assert!(!h2.client_bytes(&ping()));
    }
}

#[test]
fn a_request_head_ends_at_its_blank_line_however_split() {
    for head in [
        &b"POST /v1/logs HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n"[..],
        b"GET / HTTP/1.1\nhost: x\n\n",
        b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    ] {
        for split in 0..head.len() {
            let phase = match head_bytes(0, &head[..split]) {
                H1::Head { line } => head_bytes(line, &head[split..]),
                H1::Rest => panic!("ended early at {split} in {head:?}"),
                H1::Idle => unreachable!(),
            };
            assert_eq!(phase, H1::Rest, "split at {split} in {head:?}");
        }
        assert!(matches!(
            head_bytes(0, &head[..head.len() - 1]),
            H1::Head { .. }
        ));
    }
}

const RULES: ConnectionRules = ConnectionRules {
    idle_timeout: Some(Duration::from_secs(2)),
    read_header_timeout: Some(Duration::from_secs(1)),
    ping_policy: None,
};

/// Reads from the server side until it sees end of input.
async fn until_eof<IO: AsyncRead + AsyncWrite + Unpin>(watched: &mut Watched<IO>) {
    let mut buf = [0u8; 256];
    while watched.read(&mut buf).await.unwrap() > 0 {}
}

#[tokio::test(start_paused = true)]
async fn an_http1_connection_waits_idle_timeout_for_a_request_and_read_header_timeout_for_its_head()
{
    let (telemetry, closed) = close_counter();
    // Silent from the start: closed at idle_timeout.
    let (client, server) = tokio::io::duplex(1024);
    let mut watched = Watched::new(server, RULES).with_telemetry(Some(telemetry.clone()));
    let begin = Instant::now();
    until_eof(&mut watched).await;
    assert_eq!(begin.elapsed(), Duration::from_secs(2));
    assert_eq!(closed("idle"), 1.0);
    // Reading on after the close counts nothing more.
    until_eof(&mut watched).await;
    assert_eq!(closed("idle"), 1.0);

    // A request, its answer, then silence: idle_timeout after the answer.
    let (mut client2, server) = tokio::io::duplex(1024);
    let mut watched = Watched::new(server, RULES).with_telemetry(Some(telemetry.clone()));
    client2
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = watched.read(&mut buf).await.unwrap();
    assert!(n > 0);
    tokio::time::advance(Duration::from_secs(30)).await;
    watched.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
    let answered = Instant::now();
    until_eof(&mut watched).await;
    assert_eq!(answered.elapsed(), Duration::from_secs(2));
    assert_eq!(closed("idle"), 2.0);

    // A head that never ends: read_header_timeout after its first byte.
    let (mut client3, server) = tokio::io::duplex(1024);
    let mut watched = Watched::new(server, RULES).with_telemetry(Some(telemetry));
    tokio::time::advance(Duration::from_millis(1500)).await;
    client3.write_all(b"P").await.unwrap();
    let first_byte = Instant::now();
    let reading = async {
        let mut buf = [0u8; 16];
        while watched.read(&mut buf).await.unwrap() > 0 {}
        first_byte.elapsed()
    };
    let trickle = async {
        for &b in b"OST / HTTP/1.1\r\n" {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if client3.write_all(&[b]).await.is_err() {
                break;
            }
        }
    };
    let (closed_after, ()) = tokio::join!(reading, trickle);
    assert!(closed_after >= Duration::from_secs(1), "{closed_after:?}");
    assert!(closed_after < Duration::from_secs(2), "{closed_after:?}");
    assert_eq!(closed("read_header_timeout"), 1.0);
    assert_eq!(closed("idle"), 2.0);
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn an_idle_http2_connection_gets_goaway_after_the_server_frame_in_progress() {
    let (telemetry, closed) = close_counter();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let mut watched = Watched::new(server, RULES).with_telemetry(Some(telemetry));
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, 0));
    hello.extend(frame(HEADERS, 0x4, 1, 7));
    hello.extend(frame(DATA, END_STREAM_OR_ACK, 1, 3));
    client.write_all(&hello).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while got < hello.len() {
        got += watched.read(&mut buf).await.unwrap();
    }
    // The answer's last frame is written in two parts; idle_timeout passes
    // in between (the stream ends with the first part's header).
    let (mut reader, mut writer) = tokio::io::split(watched);
    let answer = frame(HEADERS, 0x4 | END_STREAM_OR_ACK, 1, 20);
    writer.write_all(&answer[..12]).await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    let mut read = std::pin::pin!(async {
        let mut buf = [0u8; 64];
        while reader.read(&mut buf).await.unwrap() > 0 {}
    });
    // The GOAWAY waits for the frame in progress: reading does not end.
    assert!(futures::poll!(read.as_mut()).is_pending());
    writer.write_all(&answer[12..]).await.unwrap();
    // The client reads the whole answer, GOAWAY (NO_ERROR, last stream 1),
    // then end of input, and closes; the server then sees end of input.
    let hearing = async move {
        let mut heard = Vec::new();
        client.read_to_end(&mut heard).await.unwrap();
        heard
    };
    let ((), heard) = tokio::join!(read, hearing);
    assert_eq!(heard[..answer.len()], answer[..]);
    let goaway = &heard[answer.len()..];
    assert_eq!(goaway[3], GOAWAY);
    assert_eq!(goaway[9..13], 1u32.to_be_bytes());
    assert_eq!(goaway[13..17], NO_ERROR.to_be_bytes());
    assert_eq!(&goaway[17..], b"max_idle");
    assert_eq!(closed("idle"), 1.0);
    // Whatever the server writes now goes nowhere.
    writer.write_all(&frame(PING, 0, 0, 8)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_ping_flood_gets_goaway_enhance_your_calm_and_the_connection_closed() {
    let rules = ConnectionRules {
        idle_timeout: None,
        read_header_timeout: None,
        ping_policy: Some(PingPolicy {
            min_time: Duration::from_secs(300),
            permit_without_stream: false,
        }),
    };
    let (telemetry, closed) = close_counter();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let mut watched = Watched::new(server, rules).with_telemetry(Some(telemetry));
    let mut flood = PREFACE.to_vec();
    flood.extend(frame(SETTINGS, 0, 0, 0));
    for _ in 0..4 {
        flood.extend(ping());
    }
    client.write_all(&flood).await.unwrap();
    // The server is handed the bytes, then end of input once the client
    // has read the GOAWAY and closed.
    let serving = async {
        let mut buf = vec![0u8; 4096];
        let mut got = 0;
        loop {
            match watched.read(&mut buf).await.unwrap() {
                0 => return got,
                n => got += n,
            }
        }
    };
    let hearing = async {
        let mut heard = Vec::new();
        client.read_to_end(&mut heard).await.unwrap();
        drop(client);
        heard
    };
    let (got, heard) = tokio::join!(serving, hearing);
    assert_eq!(got, flood.len());
    assert_eq!(heard[3], GOAWAY);
    assert_eq!(heard[9..13], 0u32.to_be_bytes());
    assert_eq!(heard[13..17], ENHANCE_YOUR_CALM.to_be_bytes());
    assert_eq!(&heard[17..], b"too_many_pings");
    // Four pings too soon, one close.
    assert_eq!(closed("too_many_pings"), 1.0);
    assert_eq!(closed("idle"), 0.0);
}

/// Counts the reads that reach the connection.
struct CountingReads<IO> {
    io: IO,
    reads: usize,
}

impl<IO: AsyncRead + Unpin> AsyncRead for CountingReads<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reads += 1;
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for CountingReads<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn small_reads_are_served_from_one_large_read_and_pass_every_byte_on() {
    // A 150 KB request in 16 KiB DATA frames, all there at once, read
    // the way h2 does: a frame header, then a frame's payload at most.
    let mut sent = PREFACE.to_vec();
    sent.extend(frame(HEADERS, 0x4, 1, 40));
    let mut left = 150_000;
    while left > 0 {
        let n = left.min(16_384);
        left -= n;
        sent.extend(frame(DATA, if left == 0 { 0x1 } else { 0 }, 1, n));
    }
    let (mut client, server) = tokio::io::duplex(256 * 1024);
    client.write_all(&sent).await.unwrap();
    let mut watched = Watched::new(
        CountingReads {
            io: server,
            reads: 0,
        },
        RULES,
    );
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16_393];
    while got.len() < sent.len() {
        let n = watched.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, sent);
    assert!(
        watched.io.reads <= 4,
        "{} reads of the connection for {} bytes",
        watched.io.reads,
        sent.len()
    );
    // Every frame was seen: the stream opened and was ended by the client.
    assert!(matches!(watched.protocol, Protocol::Http2(_)));
    // Drained: nothing is held between reads.
    assert_eq!(watched.ahead.capacity(), 0);
}
