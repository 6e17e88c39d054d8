//! The integrity trail in the real binary: a collector writes a trail across
//! several rotations, `auditcol verify` says OK, and then names every kind
//! of tampering with its file and line; kill -9 in the middle of writing,
//! and the restart re-hashes what no checkpoint covered.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditcol_e2e::{Collector, binary, flipt_event, try_post};
use auditcol_integrity::sidecar::read_sidecar;
use auditcol_integrity::{Reason, TrailSigner, TrailState, sidecar_path};

/// A POST of `events` to the webhook receiver: `Some(status)`, or `None`
/// when no answer came (the collector was killed).
fn post(addr: SocketAddr, events: &serde_json::Value) -> Option<u16> {
    try_post(addr, events.to_string().as_bytes())
}

/// Events `first..first + n`, each with a payload of about 8 KB so that a
/// few hundred fill a 1 MiB file.
fn events(first: usize, n: usize) -> serde_json::Value {
    let padding = "x".repeat(8000);
    (first..first + n)
        .map(|i| {
            let mut event = flipt_event(
                "flag",
                "updated",
                &format!("ev-{i}"),
                "2024-05-01T10:00:00Z",
            );
            event["payload"]["description"] = serde_json::Value::String(padding.clone());
            event
        })
        .collect::<Vec<_>>()
        .into()
}

fn config(sync: bool, checkpoint_interval: &str) -> String {
    format!(
        r#"
receivers:
  webhook:
    endpoint: "127.0.0.1:0"
    format: audit
exporters:
  file/trail:
    path: "{{DIR}}/trail/audit.jsonl"
    format: json
    sync: {sync}
    rotation:
      max_megabytes: 1
      max_backups: 0
    integrity:
      signing_key_file: "{{DIR}}/keys/auditcol-signing.pem"
      checkpoint_interval: {checkpoint_interval}
service:
  pipelines:
    logs:
      receivers: [webhook]
      exporters: [file/trail]
"#
    )
}

fn keygen(out: &Path) {
    let status = Command::new(binary())
        .args(["keygen", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// `auditcol verify` with `args`: (exit code, stdout).
fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(binary())
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn public_key(dir: &Path) -> String {
    dir.join("keys/auditcol-signing.pub.pem")
        .display()
        .to_string()
}

/// `auditcol verify --strict` of the trail the collector in `dir` wrote.
fn verify_strict(dir: &Path) -> (i32, String) {
    let trail = dir.join("trail");
    verify(&[
        "--strict",
        "--public-key",
        &public_key(dir),
        trail.to_str().unwrap(),
    ])
}

/// The trail's files, oldest first (rotated files sort by their time, the
/// live file `audit.jsonl` comes last).
fn trail_files(trail: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(trail)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        (name == "audit.jsonl", name)
    });
    files
}

/// A fresh copy of the trail directory, to damage.
fn copy_trail(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn edit_lines(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn a_trail_across_rotations_verifies_and_every_tampering_is_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("keys"));
    let mut collector = Collector::start_in(dir.path(), &config(true, "1s"), &[]);
    let addr = collector.component_endpoint("webhook");
    for request in 0..110 {
        assert_eq!(
            post(addr, &events(request * 5, 5)),
            Some(200),
            "{}",
            collector.log()
        );
    }
    collector.terminate();
    let trail = dir.path().join("trail");
    let files = trail_files(&trail);
    assert!(files.len() >= 4, "expected several rotations: {files:?}");

    let key = public_key(dir.path());
    let (code, out) = verify(&["--public-key", &key, trail.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("OK: 550 lines in {} files, trail ", files.len())),
        "{out}"
    );
    assert!(out.contains("last checkpoint 20"), "{out}");
    let (code, json) = verify(&[
        "--json",
        "--strict",
        "--public-key",
        &key,
        trail.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["trails"][0]["lines"], 550);

    // Each damage on a fresh copy: (what, damage, expected text in the report).
    let middle = files[1].clone();
    let live = files[files.len() - 1].clone();
    type Damage = Box<dyn Fn(&Path)>;
    let at = |file: &Path, copy: &Path| copy.join(name(file));
    let cases: Vec<(&str, Damage, String)> = vec![
        (
            "one byte changed in a middle line",
            Box::new({
                let middle = middle.clone();
                move |copy| {
                    edit_lines(&at(&middle, copy), |l| {
                        l[36] = l[36].replacen("ev-", "eV-", 1)
                    })
                }
            }),
            format!("{} line 37: does not match", name(&middle)),
        ),
        (
            "a line deleted",
            Box::new({
                let middle = middle.clone();
                move |copy| {
                    edit_lines(&at(&middle, copy), |l| {
                        l.remove(36);
                    })
                }
            }),
            format!("{} line 37: does not match", name(&middle)),
        ),
        (
            "a copy of a line inserted",
            Box::new({
                let middle = middle.clone();
                move |copy| {
                    edit_lines(&at(&middle, copy), |l| {
                        let line = l[35].clone();
                        l.insert(36, line);
                    })
                }
            }),
            format!("{} line 37: does not match", name(&middle)),
        ),
        (
            "two lines swapped",
            Box::new({
                let middle = middle.clone();
                move |copy| edit_lines(&at(&middle, copy), |l| l.swap(36, 37))
            }),
            format!("{} line 37: does not match", name(&middle)),
        ),
        (
            "the last line cut short",
            Box::new({
                let live = live.clone();
                move |copy| {
                    let path = at(&live, copy);
                    let len = std::fs::metadata(&path).unwrap().len();
                    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    file.set_len(len - 100).unwrap();
                }
            }),
            {
                let lines = std::fs::read_to_string(&live).unwrap().lines().count();
                format!(
                    "{} line {lines}: the file ends in the middle of line {lines}",
                    name(&live)
                )
            },
        ),
        (
            "the middle rotated file deleted",
            Box::new({
                let middle = middle.clone();
                move |copy| {
                    std::fs::remove_file(at(&middle, copy)).unwrap();
                    std::fs::remove_file(sidecar_path(&at(&middle, copy))).unwrap();
                }
            }),
            "1 file of the trail is missing between".to_owned(),
        ),
    ];
    for (what, damage, expected) in cases {
        let copy = tempfile::tempdir().unwrap();
        copy_trail(&trail, copy.path());
        damage(copy.path());
        let (code, out) = verify(&["--public-key", &key, copy.path().to_str().unwrap()]);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.starts_with("FAILED: trail "), "{what}: {out}");
        assert!(
            out.contains(&expected),
            "{what}: expected {expected:?} in\n{out}"
        );
        if what == "the middle rotated file deleted" {
            assert!(out.contains(&format!("{} and ", name(&files[0]))), "{out}");
        }
    }

    // A forger who knows the format and read the previous file's sealing
    // checkpoint rewrites the middle file and its sidecar with a chain that
    // links perfectly, signed with their own key.
    let copy = tempfile::tempdir().unwrap();
    copy_trail(&trail, copy.path());
    let forged = copy.path().join(name(&middle));
    forge(&copy.path().join(name(&files[0])), &forged);
    let (code, out) = verify(&["--public-key", &key, copy.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}.chain line 1: the checkpoint is signed by another key",
            name(&middle)
        )),
        "{out}"
    );
    // And a verifier given another public key refuses the whole trail.
    let other = tempfile::tempdir().unwrap();
    keygen(other.path());
    let other_key = other.path().join("auditcol-signing.pub.pem");
    let (code, out) = verify(&[
        "--public-key",
        other_key.to_str().unwrap(),
        trail.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signed by another key"), "{out}");
}

/// Rewrites `file` (the rotated file after `previous`) and its sidecar:
/// one line changed, the chain recomputed from `previous`'s sealing
/// checkpoint, checkpoints signed with a key of the forger's.
fn forge(previous: &Path, file: &Path) {
    let sealed = read_sidecar(&sidecar_path(previous))
        .unwrap()
        .entries
        .pop()
        .unwrap()
        .checkpoint
        .unwrap();
    assert!(sealed.sealed);
    let original = read_sidecar(&sidecar_path(file)).unwrap().entries;
    let sealed_name = original
        .last()
        .unwrap()
        .checkpoint
        .as_ref()
        .unwrap()
        .file
        .clone();
    let keys = tempfile::tempdir().unwrap();
    let files = auditcol_integrity::keys::write_key_pair(keys.path(), false).unwrap();
    let forger = TrailSigner::from_pem_file(&files.private_key).unwrap();
    let mut state = TrailState::after_sealed(&sealed);
    let mut sidecar = Vec::new();
    let mut write = |state: &mut TrailState, reason, sealed, name: &str| {
        let c = state.checkpoint(name, reason, sealed, &forger);
        sidecar.extend_from_slice(&c.to_line());
        state.committed(&c);
    };
    write(&mut state, Reason::Rotation, false, "audit.jsonl");
    let mut text = std::fs::read_to_string(file).unwrap();
    text = text.replacen("ev-", "EV-", 1);
    state.feed(text.as_bytes());
    write(&mut state, Reason::Batch, false, "audit.jsonl");
    write(&mut state, Reason::Rotation, true, &sealed_name);
    std::fs::write(file, text).unwrap();
    std::fs::write(sidecar_path(file), sidecar).unwrap();
}

#[test]
fn after_kill_9_the_restart_rehashes_the_unchecked_tail_and_the_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("keys"));
    // No checkpoint but at start: what is written before the kill is
    // covered by none.
    let config = config(false, "1h");
    let mut collector = Collector::start_in(dir.path(), &config, &[]);
    let addr = collector.component_endpoint("webhook");
    for request in 0..4 {
        assert_eq!(post(addr, &events(request * 5, 5)), Some(200));
    }
    collector.kill();
    let collector = Collector::start_in(dir.path(), &config, &[]);
    collector.wait_for_log("re-hashed 20 lines written after the last checkpoint");
    let log = collector.log();
    let line = log.lines().find(|l| l.contains("re-hashed")).unwrap();
    assert!(
        line.contains("first_line=1")
            && line.contains("last_line=20")
            && line.contains("audit.jsonl"),
        "{line}"
    );
    let addr = collector.component_endpoint("webhook");
    let mut collector = collector;
    for request in 4..8 {
        assert_eq!(post(addr, &events(request * 5, 5)), Some(200));
    }
    collector.terminate();
    let (code, out) = verify_strict(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: 40 lines in 1 file, trail "), "{out}");
}

#[test]
fn kill_9_at_random_moments_of_writing_and_rotating_leaves_a_trail_that_verifies() {
    let cycles: usize = std::env::var("AUDITCOL_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("keys"));
    let config = config(true, "1s");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    for cycle in 0..=cycles {
        let mut collector = Collector::start_in(dir.path(), &config, &[]);
        let addr = collector.component_endpoint("webhook");
        let stop = Arc::new(AtomicBool::new(false));
        // Two clients at once, so kills land in writes, checkpoints and rotations.
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let (acked, next, stop) = (acked.clone(), next.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let first = next.fetch_add(5, Ordering::Relaxed);
                        match post(addr, &events(first, 5)) {
                            Some(200) => acked.lock().unwrap().extend(first..first + 5),
                            Some(_) => {}
                            None => return,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + 157 * (cycle as u64 % 4)));
        if cycle < cycles {
            collector.kill();
        }
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        if cycle == cycles {
            collector.terminate();
        }
    }
    let trail = dir.path().join("trail");
    let (code, out) = verify_strict(dir.path());
    assert_eq!(code, 0, "{out}");
    // Every acknowledged event is in the trail.
    let mut found = std::collections::HashSet::new();
    for file in trail_files(&trail) {
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            found.insert(event["payload"]["key"].as_str().unwrap().to_owned());
        }
    }
    let acked = acked.lock().unwrap();
    let missing: Vec<_> = acked
        .iter()
        .filter(|i| !found.contains(&format!("ev-{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the trail: {missing:?}"
    );
    assert!(
        acked.len() > 100,
        "too few events acknowledged to mean anything"
    );
    eprintln!(
        "{cycles} kill -9 cycles: {} events acknowledged, {} files, {out}",
        acked.len(),
        trail_files(&trail).len(),
    );
}

#[test]
fn an_hmac_trail_verifies_with_the_secret_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(true, "1s").replace(
        r#"signing_key_file: "{DIR}/keys/auditcol-signing.pem""#,
        r#"hmac_key: "the e2e trail's shared secret""#,
    );
    let mut collector = Collector::start_in(dir.path(), &config, &[]);
    let addr = collector.component_endpoint("webhook");
    assert_eq!(post(addr, &events(0, 5)), Some(200));
    collector.terminate();
    let trail = dir.path().join("trail");
    let run = |secret: Option<&str>| {
        let mut command = Command::new(binary());
        command.args(["verify", "--hmac-key-env", "AUDITCOL_E2E_TRAIL_SECRET"]);
        command.arg(&trail).env_remove("AUDITCOL_E2E_TRAIL_SECRET");
        if let Some(secret) = secret {
            command.env("AUDITCOL_E2E_TRAIL_SECRET", secret);
        }
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    let (code, out) = run(Some("the e2e trail's shared secret"));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: 5 lines in 1 file"), "{out}");
    let (code, out) = run(Some("another secret altogether"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signed by another key"), "{out}");
    let (code, out) = run(None);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("AUDITCOL_E2E_TRAIL_SECRET is not set"),
        "{out}"
    );
}
