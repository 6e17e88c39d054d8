//! A real Kafka-compatible broker for the end-to-end tests — Tansu, which
//! `scripts/test.sh` installs (`cargo install tansu --locked --features
//! dynostore`) — and an independent client to read and write its topics
//! (confluent-kafka from the test venv, `python/kafka_client.py`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::python;

/// The `tansu` binary: `$AUDITCOL_TANSU`, else `tansu` on the PATH, else
/// cargo's bin directory.
fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("AUDITCOL_TANSU") {
        return PathBuf::from(path);
    }
    let on_path = Command::new("tansu")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return PathBuf::from("tansu");
    }
    let home = std::env::var_os("HOME").expect("HOME is not set");
    let path = Path::new(&home).join(".cargo/bin/tansu");
    assert!(
        path.exists(),
        "the Tansu broker is missing: run scripts/test.sh, which installs it (cargo install tansu --locked --features dynostore)"
    );
    path
}

/// A Tansu broker on 127.0.0.1, a port chosen at run time, in-memory storage.
/// Killed when dropped.
pub struct Tansu {
    child: Child,
    port: u16,
}

impl Tansu {
    /// Starts a broker and waits until it is ready.
    pub fn start() -> Tansu {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start tansu");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut seen = String::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("ready in") => break,
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("tansu did not start on port {port}:\n{seen}");
                }
            }
        }
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Tansu { child, port }
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let out = Command::new(tansu_binary())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
                "--partitions",
                &partitions.to_string(),
                topic,
            ])
            .output()
            .expect("cannot run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {topic}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kafka_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/kafka_client.py")
}

/// Reads `topic` from the beginning with confluent-kafka until `count`
/// messages arrived (and a moment more, to see duplicates), each value
/// decoded in `encoding`: a list of `{partition, offset, key, headers, value}`.
pub fn kafka_consume(
    brokers: &str,
    topic: &str,
    count: usize,
    encoding: &str,
) -> Vec<serde_json::Value> {
    let out = Command::new(python())
        .arg(kafka_client())
        .args([
            "consume",
            "--brokers",
            brokers,
            "--topic",
            topic,
            "--count",
            &count.to_string(),
            "--encoding",
            encoding,
        ])
        .output()
        .expect("cannot run the Kafka client");
    assert!(
        out.status.success(),
        "kafka_client.py consume {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of messages")
}

/// Produces one message per value (no newlines inside) with confluent-kafka.
pub fn kafka_produce(brokers: &str, topic: &str, values: &[&[u8]]) {
    let mut child = Command::new(python())
        .arg(kafka_client())
        .args(["produce", "--brokers", brokers, "--topic", topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run the Kafka client");
    {
        let mut stdin = child.stdin.take().unwrap();
        for value in values {
            stdin.write_all(value).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kafka_client.py produce {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
