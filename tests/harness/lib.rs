//! Harness for the end-to-end tests: starts the real `auditcol` binary on
//! ports chosen at run time, reads what it prints, and drives real clients
//! (the official OpenTelemetry Python SDK, tonic, plain HTTP).
//!
//! Receivers are configured with port 0; the harness learns the bound
//! addresses from the `listening` log lines and waits for `auditcol is
//! running` before a test sends anything.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long any awaited condition may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The `auditcol` binary: `$AUDITCOL_BIN`, or built on first use.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("AUDITCOL_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "auditcol", "--bin", "auditcol"])
            .status()
            .expect("cannot run cargo to build auditcol");
        assert!(status.success(), "building auditcol failed");
        // <target>/debug/deps/<this test> -> <target>/debug/auditcol
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("auditcol")
    })
    .clone()
}

pub mod kafka;
pub mod openmetrics;

/// The Python of the venv that `scripts/test.sh` installs.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("AUDITCOL_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME is not set");
    let p = Path::new(&home).join(".cache/auditcol/venv/bin/python");
    assert!(
        p.exists(),
        "the OpenTelemetry Python SDK venv is missing: run scripts/test.sh, which installs it"
    );
    p
}

/// A running collector.
pub struct Collector {
    child: Child,
    /// Bound addresses by protocol (`grpc`, `http`), from the `listening` lines.
    pub endpoints: HashMap<String, SocketAddr>,
    /// Bound addresses by component id (`otlp`, `webhook/flipt`), from the
    /// same lines: two receivers may both speak `http`.
    pub components: HashMap<String, SocketAddr>,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Log lines not yet looked at by [`Collector::wait_until`].
    lines: Receiver<String>,
    /// The directory `{DIR}` stands for.
    root: PathBuf,
    /// Removed when the collector is dropped, unless the test owns it.
    _dir: Option<tempfile::TempDir>,
}

impl Collector {
    /// Starts auditcol with `config`, in which `{DIR}` stands for a fresh
    /// temporary directory, and waits until it runs.
    pub fn start(config: &str) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let config = config.replace("{DIR}", dir.path().to_str().unwrap());
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        Self::spawn(dir, &["--config", path.to_str().unwrap()])
    }

    /// Starts auditcol with `config` in `dir`, which the test keeps across
    /// restarts (a persistent queue, an output file), run through `wrapper`
    /// (e.g. `["prlimit", "--fsize=20000:"]`) when not empty.
    pub fn start_in(dir: &Path, config: &str, wrapper: &[&str]) -> Collector {
        let config = config.replace("{DIR}", dir.to_str().unwrap());
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).unwrap();
        Self::launch(
            dir.to_owned(),
            None,
            wrapper,
            &["--config", path.to_str().unwrap()],
            &[],
        )
    }

    /// Like [`Collector::start`], with environment variables for the
    /// config's `${env:…}` references; `{DIR}` in their values is the
    /// collector's temporary directory too.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().to_str().unwrap().to_owned();
        let config = config.replace("{DIR}", &dir_text);
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.replace("{DIR}", &dir_text)))
            .collect();
        Self::launch(
            dir.path().to_owned(),
            Some(dir),
            &[],
            &["--config", path.to_str().unwrap()],
            &env,
        )
    }

    /// Like [`Collector::start_in`] (a directory the test keeps, e.g. with
    /// files it wrote before the start), with environment variables for the
    /// config's `${env:…}` references.
    pub fn start_in_with_env(dir: &Path, config: &str, env: &[(&str, &str)]) -> Collector {
        let config = config.replace("{DIR}", dir.to_str().unwrap());
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::launch(
            dir.to_owned(),
            None,
            &[],
            &["--config", path.to_str().unwrap()],
            &env,
        )
    }

    /// Starts auditcol with the given arguments.
    pub fn spawn(dir: tempfile::TempDir, args: &[&str]) -> Collector {
        Self::launch(dir.path().to_owned(), Some(dir), &[], args, &[])
    }

    fn launch(
        root: PathBuf,
        dir: Option<tempfile::TempDir>,
        wrapper: &[&str],
        args: &[&str],
        env: &[(String, String)],
    ) -> Collector {
        let mut collector = Self::spawn_process(root, dir, wrapper, args, env);
        collector.wait_until_running();
        collector
    }

    /// Starts auditcol with `config` in `dir` (`{DIR}`) and returns at once,
    /// before it runs: follow with [`Collector::wait_until`] or
    /// [`Collector::wait_until_running`].
    pub fn spawn_in(dir: &Path, config: &str) -> Collector {
        let config = config.replace("{DIR}", dir.to_str().unwrap());
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).unwrap();
        Self::spawn_process(
            dir.to_owned(),
            None,
            &[],
            &["--config", path.to_str().unwrap()],
            &[],
        )
    }

    fn spawn_process(
        root: PathBuf,
        dir: Option<tempfile::TempDir>,
        wrapper: &[&str],
        args: &[&str],
        env: &[(String, String)],
    ) -> Collector {
        let mut command = match wrapper.split_first() {
            None => Command::new(binary()),
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(binary());
                c
            }
        };
        let mut child = command
            // Tests run side by side: the metrics endpoint on a port the
            // OS chooses (the default, 8888, would be taken by the first).
            .arg("--set=service::telemetry::metrics::address=127.0.0.1:0")
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            // The receivers log each request at debug level: tests await those lines.
            .env(
                "RUST_LOG",
                "info,auditcol_receiver_otlp=debug,auditcol_receiver_webhook=debug,auditcol_receiver_kafka=debug",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start auditcol");
        let (out_tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if out_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (line_tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
                let _ = line_tx.send(line);
            }
        });
        Collector {
            child,
            endpoints: HashMap::new(),
            components: HashMap::new(),
            stdout,
            stderr,
            lines,
            root,
            _dir: dir,
        }
    }

    /// Reads the log until `auditcol is running`.
    pub fn wait_until_running(&mut self) {
        self.wait_until("auditcol is running");
    }

    /// Reads the log until a line contains `text`, noting the addresses of
    /// the `listening` lines on the way (by protocol, and by component).
    pub fn wait_until(&mut self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if line.contains("listening")
                        && let (Some(protocol), Some(endpoint)) =
                            (field(&line, "protocol"), field(&line, "endpoint"))
                    {
                        let endpoint: SocketAddr = endpoint.parse().unwrap();
                        self.endpoints.insert(protocol, endpoint);
                        if let Some(component) = field(&line, "component") {
                            self.components.insert(component, endpoint);
                        }
                    }
                    if line.contains(text) {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("auditcol logged no line with {text:?}:\n{}", self.log());
                }
            }
        }
    }

    /// The collector's metrics, scraped now and parsed strictly as
    /// OpenMetrics text (see [`openmetrics`]).
    pub fn metrics(&self) -> openmetrics::Exposition {
        let response = http_get(self.endpoint("metrics"), "/metrics");
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(
            response.header("content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
        );
        openmetrics::parse(&response.text()).unwrap_or_else(|e| panic!("{e}\n{}", response.text()))
    }

    /// The bound address of `protocol` (`grpc` or `http`).
    pub fn endpoint(&self, protocol: &str) -> SocketAddr {
        *self
            .endpoints
            .get(protocol)
            .unwrap_or_else(|| panic!("no {protocol} listener; log:\n{}", self.log()))
    }

    /// The bound address of the receiver `id` (`webhook/flipt`).
    pub fn component_endpoint(&self, id: &str) -> SocketAddr {
        *self
            .components
            .get(id)
            .unwrap_or_else(|| panic!("no listener for {id}; log:\n{}", self.log()))
    }

    /// A path inside the collector's temporary directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Everything the collector logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log has a line containing `text`.
    pub fn wait_for_log(&self, text: &str) {
        self.wait_for_log_within(text, TIMEOUT)
    }

    /// Waits up to `within` until the log has a line containing `text`.
    pub fn wait_for_log_within(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the next `n` lines on stdout.
    pub fn stdout_lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        (0..n)
            .map(|i| {
                self.stdout
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(|_| {
                        panic!("only {i} of {n} lines on stdout; log:\n{}", self.log())
                    })
            })
            .collect()
    }

    /// Kills the process (SIGKILL): no shutdown, nothing flushed or committed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.send_terminate();
        self.wait_exit()
    }

    /// Sends SIGTERM; the collector shuts down meanwhile.
    pub fn send_terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "auditcol did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Collector {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tests/python/webhook_sink.py` process and the file it writes.
pub struct WebhookSink {
    child: Child,
    /// Where requests go.
    pub url: String,
    out: PathBuf,
}

impl WebhookSink {
    /// Starts one on a port the OS chooses.
    pub fn start(dir: &Path, name: &str, secret: &str, header: &str) -> WebhookSink {
        Self::start_on(dir, name, secret, header, 0)
    }

    /// Starts one on `port` (0: the OS chooses); requests go to
    /// `http://127.0.0.1:<port>/<name>` and are written to `<dir>/<name>.jsonl`.
    pub fn start_on(dir: &Path, name: &str, secret: &str, header: &str, port: u16) -> WebhookSink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/webhook_sink.py");
        let out = dir.join(format!("{name}.jsonl"));
        let mut child = Command::new(python())
            .args([
                script.as_os_str(),
                secret.as_ref(),
                header.as_ref(),
                out.as_os_str(),
            ])
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot run Python");
        let mut bound = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut bound)
            .unwrap();
        let url = format!("http://127.0.0.1:{}/{name}", bound.trim());
        WebhookSink { child, url, out }
    }

    /// The requests received so far: (signature valid, body as JSON).
    pub fn requests(&self) -> Vec<(bool, serde_json::Value)> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line).unwrap();
                let body = serde_json::from_str(entry["body"].as_str().unwrap()).unwrap();
                (entry["valid"].as_bool().unwrap(), body)
            })
            .collect()
    }

    /// The events received so far (arrays flattened), with their verdicts.
    pub fn events(&self) -> Vec<(bool, serde_json::Value)> {
        let mut events = Vec::new();
        for (valid, body) in self.requests() {
            match body {
                serde_json::Value::Array(list) => {
                    events.extend(list.into_iter().map(|e| (valid, e)))
                }
                one => events.push((valid, one)),
            }
        }
        events
    }

    pub fn wait_for_events(&self, n: usize) -> Vec<(bool, serde_json::Value)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events();
            if events.len() >= n || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago, for a server a test
/// starts later (an endpoint that is down first, then comes up).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `key=value` or `key="value"` from a log line.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    let value = rest.split_whitespace().next()?;
    Some(value.trim_matches('"').to_owned())
}

/// Waits until `path` holds at least `n` lines and returns them.
pub fn file_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} of {n} lines:\n{text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends Flipt-style `events` with the official OpenTelemetry Python SDK
/// over `protocol` (`grpc` or `http`); returns its summary
/// `{"exported": N, "failed": M}`.
pub fn send_with_python_sdk(
    protocol: &str,
    endpoint: SocketAddr,
    events: &serde_json::Value,
) -> serde_json::Value {
    send_with_python_sdk_and_headers(protocol, endpoint, events, &[])
}

/// [`send_with_python_sdk`], with `headers` (the SDK's `headers` option:
/// gRPC metadata or HTTP headers) on every export.
pub fn send_with_python_sdk_and_headers(
    protocol: &str,
    endpoint: SocketAddr,
    events: &serde_json::Value,
    headers: &[(&str, &str)],
) -> serde_json::Value {
    let args: Vec<String> = headers
        .iter()
        .flat_map(|(k, v)| ["--header".to_owned(), format!("{k}={v}")])
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_python_sdk(protocol, endpoint, events, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Python SDK client failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// Runs `tests/python/send_audit.py` with `events` on stdin and `args`
/// after the protocol and endpoint (`--ca-file`, `--client-cert`,
/// `--client-key`, `--timeout`, `--header`); whatever the outcome.
pub fn run_python_sdk(
    protocol: &str,
    endpoint: SocketAddr,
    events: &serde_json::Value,
    args: &[&str],
) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/send_audit.py");
    let mut child = Command::new(python())
        .arg(script)
        .args(["--protocol", protocol, "--endpoint", &endpoint.to_string()])
        .args(args)
        // `requests` lets these override the SDK's own `certificate_file`.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the Python SDK client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(events.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The signature of `body`, computed by the Flagsmith documentation's own
/// Python snippet (Flipt's sink signs the same way: hex HMAC-SHA256).
pub fn sign_with_documented_snippet(secret: &str, body: &[u8]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/flagsmith_signature.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run Python");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A plain HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// GETs `http://addr{path}` over a fresh connection.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

/// POSTs `body` to `http://addr{path}` with `headers`, over a fresh connection.
pub fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
    out
}

/// A POST of a JSON `body` to `/` that reports failure instead of panicking
/// (the collector may be killed mid-request): `Some(status)` or `None` when no answer came.
pub fn try_post(addr: SocketAddr, body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The seed event of the Flipt documentation with another timestamp.
pub fn flipt_event(noun: &str, verb: &str, key: &str, timestamp: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "0.2",
        "type": noun,
        "action": verb,
        "metadata": {"actor": {"authentication": "none", "ip": "172.17.0.1"}},
        "payload": {"description": "flipt flag", "enabled": true, "key": key, "name": key, "namespace_key": "default"},
        "timestamp": timestamp,
        "status": "success"
    })
}
