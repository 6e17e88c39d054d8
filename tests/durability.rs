//! Durability in the real binary: kill -9 in the middle of a stream, a sink
//! down across a restart, a torn queue tail, a full disk. The claim under
//! test: every event whose request was answered OK reaches every sink.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use auditcol_e2e::{Collector, WebhookSink, binary, flipt_event, free_port, try_post};

const SECRET: &str = "durability secret";
const HEADER: &str = "X-Auditcol-Signature";

/// A JSON POST to `path` that reports failure instead of panicking (the
/// collector may be killed mid-request): `Some((status, answer))` or `None`
/// when no answer came.
fn post_json(addr: SocketAddr, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text))
}

/// Events numbered `first..first + n` as an OTLP/JSON logs request, as an
/// OpenTelemetry SDK sends them: `audit.*` attributes, the payload
/// `{"key": "ev-<number>"}` as the body.
fn otlp_numbered(first: usize, n: usize) -> Vec<u8> {
    let records: Vec<_> = (first..first + n)
        .map(|i| {
            let noun = ["flag", "segment", "variant"][i % 3];
            serde_json::json!({
                "timeUnixNano": "1714557600000000000",
                "attributes": [
                    {"key": "audit.type", "value": {"stringValue": noun}},
                    {"key": "audit.action", "value": {"stringValue": "updated"}},
                ],
                "body": {"kvlistValue": {"values": [
                    {"key": "key", "value": {"stringValue": format!("ev-{i}")}},
                ]}},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]
    }))
    .unwrap()
}

/// Events numbered `first..first + n`: payload key `ev-<number>`.
fn numbered(first: usize, n: usize) -> Vec<u8> {
    let events: Vec<_> = (first..first + n)
        .map(|i| {
            let noun = ["flag", "segment", "variant"][i % 3];
            flipt_event(noun, "updated", &format!("ev-{i}"), "2024-05-01T10:00:00Z")
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

fn number(event: &serde_json::Value) -> usize {
    event["payload"]["key"].as_str().unwrap()[3..]
        .parse()
        .unwrap()
}

/// Event numbers in a `format: json` file, with how often each appears.
/// Panics if any line does not parse.
fn file_counts(path: &Path) -> HashMap<usize, usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "line {} of {} does not parse ({e}): {line}",
                n + 1,
                path.display()
            )
        });
        *counts.entry(number(&event)).or_default() += 1;
    }
    counts
}

fn sink_counts(sink: &WebhookSink) -> HashMap<usize, usize> {
    let mut counts = HashMap::new();
    for (valid, event) in sink.events() {
        assert!(valid, "a request with a bad signature: {event}");
        *counts.entry(number(&event)).or_default() += 1;
    }
    counts
}

/// Waits until `counts()` holds every number of `acked`.
fn wait_for_all(
    acked: &BTreeSet<usize>,
    what: &str,
    counts: impl Fn() -> HashMap<usize, usize>,
) -> HashMap<usize, usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = counts();
        let missing: Vec<_> = acked.iter().filter(|n| !got.contains_key(n)).collect();
        if missing.is_empty() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} acknowledged events never arrived, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn duplicates(counts: &HashMap<usize, usize>) -> usize {
    counts.values().map(|n| n - 1).sum()
}

const PERSISTENT: &str = r#"
receivers:
  webhook:
    endpoint: "127.0.0.1:0"
    format: audit
  otlp:
    protocols:
      http: {endpoint: "127.0.0.1:0"}
exporters:
  file:
    path: "{DIR}/audit.jsonl"
    format: json
    sync: true
    sending_queue:
      storage: "{DIR}/queue"
  webhook/sink:
    endpoint: "{SINK}"
    signing_secret: "durability secret"
    timeout: 2s
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 500ms
    sending_queue:
      storage: "{DIR}/queue"
service:
  pipelines:
    logs:
      receivers: [webhook, otlp]
      exporters: [file, webhook/sink]
"#;

#[test]
fn acknowledged_events_survive_kill_9_at_random_moments() {
    let cycles: usize = std::env::var("AUDITCOL_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start(dir.path(), "sink", SECRET, HEADER);
    let config = PERSISTENT.replace("{SINK}", &sink.url);
    let mut acked = BTreeSet::new();
    let mut next = 0;
    for cycle in 0..=cycles {
        let mut collector = Collector::start_in(dir.path(), &config, &[]);
        let addr = collector.component_endpoint("otlp");
        // Send for a while; the last cycle runs to the end, the others are
        // killed from another thread at a moment that differs from cycle to
        // cycle, in the middle of requests.
        let run_for = Duration::from_millis(200 + 173 * (cycle as u64 % 5));
        let killer = (cycle < cycles).then(|| {
            let pid = collector.pid().to_string();
            std::thread::spawn(move || {
                std::thread::sleep(run_for);
                Command::new("kill").args(["-KILL", &pid]).status().unwrap();
            })
        });
        let started = Instant::now();
        loop {
            match post_json(addr, "/v1/logs", &otlp_numbered(next, 5)).map(|(s, _)| s) {
                Some(200) => acked.extend(next..next + 5),
                None if killer.is_some() && started.elapsed() >= run_for => {
                    // Killed mid-request: neither acknowledged nor refused.
                    next += 5;
                    break;
                }
                _ => {}
            }
            next += 5;
            if killer.is_none() && started.elapsed() >= run_for {
                break;
            }
        }
        if let Some(killer) = killer {
            killer.join().unwrap();
        }
        if cycle < cycles {
            collector.kill();
        } else {
            let file = collector.path("audit.jsonl");
            let in_file = wait_for_all(&acked, "file", || file_counts(&file));
            let at_sink = wait_for_all(&acked, "webhook sink", || sink_counts(&sink));
            eprintln!(
                "{cycles} kill -9 cycles: {} events acknowledged of {next} sent (the rest cut off by a kill); \
                 duplicates: {} in the file, {} at the webhook sink",
                acked.len(),
                duplicates(&in_file),
                duplicates(&at_sink)
            );
        }
    }
    assert!(
        acked.len() > 50,
        "too few events acknowledged to mean anything"
    );
}

/// Sends three requests of 5 events while the sink is down (they wait in
/// the persistent queue), kills the collector, lets `between` do its worst
/// to the queue, restarts it and brings the sink up.
fn outage_across_a_restart(between: impl Fn(&Path)) -> (Collector, WebhookSink, Vec<usize>) {
    let dir = tempfile::tempdir().unwrap().keep();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/sink");
    let config = PERSISTENT.replace("{SINK}", &url);
    let mut collector = Collector::start_in(&dir, &config, &[]);
    let addr = collector.component_endpoint("webhook");
    for request in 0..3 {
        assert_eq!(try_post(addr, &numbered(request * 5, 5)), Some(200));
    }
    collector.kill();
    between(&dir.join("queue/webhook~sink"));
    let collector = Collector::start_in(&dir, &config, &[]);
    let sink = WebhookSink::start_on(&dir, "sink", SECRET, HEADER, port);
    (collector, sink, (0..15).collect())
}

#[test]
fn a_sink_down_across_a_restart_gets_every_acknowledged_event() {
    let (_collector, sink, sent) = outage_across_a_restart(|_| {});
    let acked: BTreeSet<usize> = sent.into_iter().collect();
    let got = wait_for_all(&acked, "webhook sink", || sink_counts(&sink));
    assert_eq!(got.len(), 15);
}

#[test]
fn a_torn_queue_tail_is_reported_and_everything_before_it_is_delivered() {
    let (collector, sink, _) = outage_across_a_restart(|queue| {
        let mut segments: Vec<_> = std::fs::read_dir(queue)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segments.sort();
        let last = segments.pop().expect("a segment");
        let len = std::fs::metadata(&last).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(len - 7)
            .unwrap();
    });
    collector.wait_for_log("persistent queue damaged");
    assert!(collector.log().contains("cut short"), "{}", collector.log());
    // The first two requests' events are before the torn record.
    let before: BTreeSet<usize> = (0..10).collect();
    wait_for_all(&before, "webhook sink", || sink_counts(&sink));
}

#[test]
fn a_queue_directory_that_cannot_be_created_fails_the_start_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, "x").unwrap();
    let config = format!(
        r#"
receivers:
  webhook:
    endpoint: "127.0.0.1:0"
exporters:
  file:
    path: "{dir}/audit.jsonl"
    sending_queue:
      storage: "{dir}/not-a-directory/queue"
service:
  pipelines:
    logs: {{receivers: [webhook], exporters: [file]}}
"#,
        dir = dir.path().display()
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(binary())
        // No metrics endpoint: its default port may be taken by a test beside.
        .args(["--set=service::telemetry::metrics::level=none"])
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot open the persistent queue") && stderr.contains("not-a-directory"),
        "{stderr}"
    );
}

#[test]
fn a_full_disk_leaves_every_line_whole_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
receivers:
  webhook:
    endpoint: "127.0.0.1:0"
    format: audit
exporters:
  file:
    path: "{DIR}/audit.jsonl"
    format: json
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 100ms
      max_elapsed_time: 1s
service:
  pipelines:
    logs: {receivers: [webhook], exporters: [file]}
"#;
    // The file may not grow past 20 kB: a full disk, as far as the writer
    // can tell (writes stop midway, then fail with EFBIG).
    let collector = Collector::start_in(dir.path(), config, &["prlimit", "--fsize=20000:"]);
    let addr = collector.component_endpoint("webhook");
    let mut acked = BTreeSet::new();
    let mut refused = Vec::new();
    for request in 0..200 {
        let first = request * 7;
        match try_post(addr, &numbered(first, 7)) {
            Some(200) => acked.extend(first..first + 7),
            _ => refused.push(first),
        }
        if refused.len() == 3 {
            break;
        }
    }
    assert!(!refused.is_empty(), "the limit was never reached");
    collector.wait_for_log("cannot write");
    assert!(
        collector.log().contains("File too large"),
        "{}",
        collector.log()
    );
    let file = collector.path("audit.jsonl");
    let counts = file_counts(&file);
    assert_eq!(duplicates(&counts), 0, "a torn batch was written twice");

    // Room comes back; the clients send what was refused again.
    let raised = Command::new("prlimit")
        .args(["--pid", &collector.pid().to_string(), "--fsize=unlimited:"])
        .status()
        .unwrap();
    assert!(raised.success());
    for first in refused {
        assert_eq!(try_post(addr, &numbered(first, 7)), Some(200));
        acked.extend(first..first + 7);
    }
    collector.wait_for_log("writing works again");
    let counts = file_counts(&file);
    let missing: Vec<_> = acked.iter().filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    assert_eq!(duplicates(&counts), 0);
}

#[test]
fn a_queue_that_cannot_be_written_is_backpressure_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start(dir.path(), "sink", SECRET, HEADER);
    let config = r#"
receivers:
  webhook:
    endpoint: "127.0.0.1:0"
    format: audit
exporters:
  webhook/sink:
    endpoint: "{SINK}"
    signing_secret: "durability secret"
    sending_queue:
      storage: "{DIR}/queue"
service:
  pipelines:
    logs: {receivers: [webhook], exporters: [webhook/sink]}
"#
    .replace("{SINK}", &sink.url);
    // The queue's files may not grow past 30 kB: its disk is full.
    let collector = Collector::start_in(dir.path(), &config, &["prlimit", "--fsize=30000:"]);
    let addr = collector.component_endpoint("webhook");
    let mut acked = BTreeSet::new();
    let mut refusal = None;
    for request in 0..500 {
        let first = request * 5;
        match post_json(addr, "/", &numbered(first, 5)) {
            Some((200, _)) => acked.extend(first..first + 5),
            Some((status, text)) => {
                refusal = Some((status, text, first));
                break;
            }
            None => panic!("no answer: the collector died?\n{}", collector.log()),
        }
    }
    let (status, text, first) = refusal.expect("the queue never filled");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("persistent queue"), "{text}");
    assert!(text.to_lowercase().contains("retry-after"), "{text}");
    collector.wait_for_log("persistent queue write failed");

    // Room again: the same request is taken, and everything arrives.
    let raised = Command::new("prlimit")
        .args(["--pid", &collector.pid().to_string(), "--fsize=unlimited:"])
        .status()
        .unwrap();
    assert!(raised.success());
    assert_eq!(try_post(addr, &numbered(first, 5)), Some(200));
    acked.extend(first..first + 5);
    wait_for_all(&acked, "webhook sink", || sink_counts(&sink));
}

/// One keep-alive HTTP/1.1 connection for many requests (when the collector
/// is out of file handles, a new connection would not be accepted).
struct KeepAlive {
    stream: TcpStream,
    addr: SocketAddr,
}

impl KeepAlive {
    fn open(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        KeepAlive { stream, addr }
    }

    /// POSTs Flipt events to `/` and returns the status.
    fn post(&mut self, body: &[u8]) -> u16 {
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.stream.write_all(head.as_bytes()).unwrap();
        self.stream.write_all(body).unwrap();
        // Read the head, then exactly Content-Length bytes of body.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).unwrap();
        head.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

#[test]
fn rotation_without_file_handles_writes_on_and_rotates_once_they_are_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
receivers:
  webhook:
    endpoint: "127.0.0.1:0"
    format: audit
exporters:
  file:
    path: "{DIR}/audit.jsonl"
    format: json
    rotation: {max_megabytes: 1, max_backups: 0}
service:
  pipelines:
    logs: {receivers: [webhook], exporters: [file]}
"#;
    let collector = Collector::start_in(dir.path(), config, &["prlimit", "--nofile=64:64"]);
    let addr = collector.component_endpoint("webhook");
    let file = collector.path("audit.jsonl");
    let mut client = KeepAlive::open(addr);
    let mut next = 0;
    let mut acked = BTreeSet::new();
    let mut send = |client: &mut KeepAlive, next: &mut usize| {
        assert_eq!(client.post(&numbered(*next, 20)), 200);
        acked.extend(*next..*next + 20);
        *next += 20;
    };
    // Almost 1 MiB: the next batches will need a rotation.
    while std::fs::metadata(&file).map_or(0, |m| m.len()) < 1_000_000 {
        send(&mut client, &mut next);
    }
    // Take every file handle the collector has left.
    let mut idle = Vec::new();
    for _ in 0..80 {
        idle.push(TcpStream::connect(addr).unwrap());
    }
    collector.wait_for_log("cannot accept a connection");
    for _ in 0..10 {
        send(&mut client, &mut next);
    }
    collector.wait_for_log("cannot rotate");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("audit-")),
        "no backup while rotation fails"
    );
    // Handles come back: the next write rotates by itself.
    drop(idle);
    std::thread::sleep(Duration::from_millis(1500));
    send(&mut client, &mut next);
    collector.wait_for_log("rotation works again");
    let mut counts: HashMap<usize, usize> = HashMap::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("audit") && name.ends_with(".jsonl") {
            files += 1;
            for (n, c) in file_counts(&path) {
                *counts.entry(n).or_default() += c;
            }
        }
    }
    assert_eq!(files, 2, "the file and one backup");
    let missing: Vec<_> = acked.iter().filter(|n| !counts.contains_key(n)).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    assert_eq!(duplicates(&counts), 0);
}

#[test]
fn a_shutdown_that_cannot_drain_exits_1_and_says_what_was_left_and_where() {
    // Nobody listens at the destination: every send fails and is retried
    // until the shutdown deadline.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
receivers:
  webhook: {endpoint: "127.0.0.1:0", format: audit}
exporters:
  webhook/memory:
    endpoint: "http://127.0.0.1:{PORT}/down"
    retry_on_failure: {initial_interval: 50ms, max_interval: 100ms}
    sending_queue: {wait_for_result: false, num_consumers: 1}
  webhook/persistent:
    endpoint: "http://127.0.0.1:{PORT}/down"
    retry_on_failure: {initial_interval: 50ms, max_interval: 100ms}
    sending_queue: {storage: "{DIR}/queue", num_consumers: 1}
service:
  pipelines:
    logs: {receivers: [webhook], exporters: [webhook/memory, webhook/persistent]}
"#
    .replace("{PORT}", &port.to_string())
    .replace("{DIR}", dir.path().to_str().unwrap());
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut collector = Collector::spawn(
        dir,
        &[
            "--config",
            path.to_str().unwrap(),
            "--shutdown-timeout",
            "1s",
        ],
    );
    let endpoint = collector.component_endpoint("webhook");
    // Both exporters acknowledge when the events are queued.
    for first in [0, 2] {
        let (status, answer) = post_json(endpoint, "/", &numbered(first, 2)).unwrap();
        assert_eq!(status, 200, "{answer}");
    }
    let status = collector.terminate();
    let log = collector.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("4 records LOST: acknowledged when queued in memory and never exported"),
        "{log}"
    );
    assert!(
        log.contains("2 batches kept in the persistent queue"),
        "{log}"
    );
    assert!(
        log.contains("stopped before every exporter drained (--shutdown-timeout 1s): 2 batches kept in persistent queues, 0 records answered as failed to their senders, 4 records lost"),
        "{log}"
    );
}
