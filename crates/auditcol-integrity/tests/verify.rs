//! The verifier against trails written by [`TrailState`] and then damaged
//! in every way the issue lists, plus a property test: any single edit,
//! insertion, deletion or swap of lines is detected.

use std::path::{Path, PathBuf};

use auditcol_integrity::verify::{NoProgress, ProblemKind, Report};
use auditcol_integrity::{
    Reason, TrailSigner, TrailState, TrailVerifier, VerifyOptions, sidecar_path, verify_paths,
};
use proptest::prelude::*;

const TRAIL: &str = "0123456789abcdef0123456789abcdef";

fn signer() -> TrailSigner {
    TrailSigner::hmac(b"the test trail's secret")
}

fn key() -> TrailVerifier {
    signer().verifier()
}

/// The names of a trail's files: `audit-N.jsonl` for rotated ones, then
/// `audit.jsonl`.
fn names(files: usize) -> Vec<String> {
    (0..files)
        .map(|i| {
            if i + 1 == files {
                "audit.jsonl".to_owned()
            } else {
                format!("audit-{i}.jsonl")
            }
        })
        .collect()
}

/// Writes `files` (lines without their `\n`) as the exporter would: a
/// checkpoint before the first line of each file and after every `every`
/// lines, rotated files sealed, and a last checkpoint at the end (shutdown).
fn write_trail(
    dir: &Path,
    files: &[Vec<String>],
    every: usize,
    signer: &TrailSigner,
) -> Vec<PathBuf> {
    let mut state = TrailState::begin("file/audit", TRAIL);
    let mut paths = Vec::new();
    let names = names(files.len());
    for (i, lines) in files.iter().enumerate() {
        let path = dir.join(&names[i]);
        let mut data = Vec::new();
        let mut sidecar = Vec::new();
        let write = |state: &mut TrailState, reason, sealed, name: &str, sidecar: &mut Vec<u8>| {
            let c = state.checkpoint(name, reason, sealed, signer);
            sidecar.extend_from_slice(&c.to_line());
            state.committed(&c);
            c
        };
        let start = if i == 0 {
            Reason::Start
        } else {
            Reason::Rotation
        };
        write(&mut state, start, false, "audit.jsonl", &mut sidecar);
        for (n, line) in lines.iter().enumerate() {
            let line = format!("{line}\n");
            data.extend_from_slice(line.as_bytes());
            state.feed(line.as_bytes());
            if (n + 1) % every == 0 {
                write(
                    &mut state,
                    Reason::Batch,
                    false,
                    "audit.jsonl",
                    &mut sidecar,
                );
            }
        }
        if i + 1 < files.len() {
            let sealed = write(&mut state, Reason::Rotation, true, &names[i], &mut sidecar);
            state = state.next_file(&sealed);
        } else if state.is_dirty() {
            write(
                &mut state,
                Reason::Shutdown,
                false,
                "audit.jsonl",
                &mut sidecar,
            );
        }
        std::fs::write(&path, data).unwrap();
        std::fs::write(sidecar_path(&path), sidecar).unwrap();
        paths.push(path);
    }
    paths
}

fn lines(file: usize, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"version":"0.2","type":"flag","action":"updated","payload":{{"key":"f{file}-{i}"}}}}"#))
        .collect()
}

fn three_files(dir: &Path, every: usize) -> Vec<PathBuf> {
    write_trail(
        dir,
        &[lines(0, 10), lines(1, 10), lines(2, 10)],
        every,
        &signer(),
    )
}

fn verify(paths: &[PathBuf], strict: bool) -> Report {
    verify_paths(paths, &key(), VerifyOptions { strict }, &NoProgress)
}

fn verify_dir(dir: &Path) -> Report {
    verify(&[dir.to_owned()], false)
}

/// The single problem of a report on one trail.
fn problem(report: &Report) -> auditcol_integrity::Problem {
    assert!(!report.ok, "expected a problem: {report:#?}");
    report
        .trails
        .iter()
        .find_map(|t| t.problem.clone())
        .or_else(|| report.problems.first().cloned())
        .unwrap()
}

fn edit_lines(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(path, out).unwrap();
}

fn file_of(p: &auditcol_integrity::Problem) -> String {
    Path::new(p.file.as_deref().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn an_untouched_trail_across_rotations_verifies() {
    let dir = tempfile::tempdir().unwrap();
    three_files(dir.path(), 3);
    let report = verify_dir(dir.path());
    assert!(report.ok, "{report:#?}");
    let trail = &report.trails[0];
    assert_eq!((trail.lines, trail.files.len()), (30, 3));
    assert_eq!(trail.trail, TRAIL);
    assert!(trail.notes.is_empty(), "{:?}", trail.notes);
    assert!(trail.last_checkpoint.is_some());
}

#[test]
fn a_changed_byte_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 1);
    edit_lines(&paths[1], |l| l[4] = l[4].replacen("f1-4", "f1-5", 1));
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, file_of(&p), p.line, p.last_line),
        (
            ProblemKind::LineMismatch,
            "audit-1.jsonl".into(),
            Some(5),
            None
        )
    );
}

#[test]
fn a_change_inside_a_checkpoint_of_many_lines_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 4);
    edit_lines(&paths[0], |l| l[5].push(' '));
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, p.line, p.last_line),
        (ProblemKind::LineMismatch, Some(6), None)
    );
    assert!(
        p.message.contains("holds"),
        "the length changed: {}",
        p.message
    );
}

#[test]
fn a_deletion_in_the_last_checkpoint_is_reported_where_it_was_not_as_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 5);
    edit_lines(&paths[2], |l| {
        l.remove(7);
    });
    let p = problem(&verify_dir(dir.path()));
    assert_eq!((p.kind, p.line), (ProblemKind::LineMismatch, Some(8)));
}

#[test]
fn a_deleted_line_is_reported_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 1);
    edit_lines(&paths[1], |l| {
        l.remove(3);
    });
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, file_of(&p), p.line),
        (ProblemKind::LineMismatch, "audit-1.jsonl".into(), Some(4))
    );
}

#[test]
fn an_inserted_copy_is_reported_at_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 1);
    edit_lines(&paths[1], |l| {
        let copy = l[2].clone();
        l.insert(3, copy);
    });
    let p = problem(&verify_dir(dir.path()));
    assert_eq!((p.kind, p.line), (ProblemKind::LineMismatch, Some(4)));
}

#[test]
fn swapped_lines_are_reported_at_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 1);
    edit_lines(&paths[2], |l| l.swap(6, 7));
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, file_of(&p), p.line),
        (ProblemKind::LineMismatch, "audit.jsonl".into(), Some(7))
    );
}

#[test]
fn a_cut_last_line_is_reported_as_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 1);
    let len = std::fs::metadata(&paths[2]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&paths[2])
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, file_of(&p), p.line),
        (ProblemKind::Truncated, "audit.jsonl".into(), Some(10))
    );
    assert!(p.message.contains("middle of line 10"), "{}", p.message);
}

#[test]
fn a_deleted_middle_file_and_its_sidecar_are_missed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    std::fs::remove_file(&paths[1]).unwrap();
    std::fs::remove_file(sidecar_path(&paths[1])).unwrap();
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(p.kind, ProblemKind::MissingFile);
    assert!(
        p.message.contains("audit-0.jsonl") && p.message.contains("file 1 of the trail"),
        "{}",
        p.message
    );
}

#[test]
fn a_deleted_middle_file_whose_sidecar_stayed_is_missed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    std::fs::remove_file(&paths[1]).unwrap();
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, file_of(&p)),
        (ProblemKind::MissingData, "audit-1.jsonl".into())
    );
}

#[test]
fn a_file_rewritten_with_a_chain_signed_by_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    // The forger knows the format, the trail id and the previous head, but
    // not the key: same trail, same place, their own key.
    let forged = tempfile::tempdir().unwrap();
    let other = TrailSigner::hmac(b"the forger's secret");
    let mut edited = lines(1, 10);
    edited[2] = "a forged line".into();
    let forged_paths = write_trail(
        forged.path(),
        &[lines(0, 10), edited, lines(2, 10)],
        3,
        &other,
    );
    std::fs::copy(&forged_paths[1], &paths[1]).unwrap();
    std::fs::copy(sidecar_path(&forged_paths[1]), sidecar_path(&paths[1])).unwrap();
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(p.kind, ProblemKind::BadSignature);
    assert!(
        p.sidecar
            .as_deref()
            .unwrap()
            .ends_with("audit-1.jsonl.chain")
    );
    assert_eq!(p.sidecar_line, Some(1));
    assert!(p.message.contains("another key"), "{}", p.message);
}

#[test]
fn without_line_heads_a_change_is_named_by_its_checkpoints_lines() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 4);
    // Rewrite the sidecar with checkpoints that carry no line heads, as the
    // writer does past 4 Mi lines, re-signed with the trail's key.
    let sidecar = sidecar_path(&paths[0]);
    let mut text = String::new();
    for line in std::fs::read_to_string(&sidecar).unwrap().lines() {
        let mut c = auditcol_integrity::Checkpoint::parse(line.as_bytes()).unwrap();
        c.line_heads.0.clear();
        c.sign(&signer());
        text.push_str(std::str::from_utf8(&c.to_line()).unwrap());
    }
    std::fs::write(&sidecar, text).unwrap();
    assert!(verify_dir(dir.path()).ok);
    edit_lines(&paths[0], |l| l[5].push(' '));
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, p.line, p.last_line),
        (ProblemKind::LineMismatch, Some(5), Some(8))
    );
}

#[test]
fn a_changed_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    edit_lines(&sidecar_path(&paths[0]), |l| {
        l[2] = l[2].replace("\"reason\":\"batch\"", "\"reason\":\"interval\"")
    });
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, p.sidecar_line),
        (ProblemKind::BadSignature, Some(3))
    );
}

#[test]
fn a_removed_checkpoint_is_missed() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    edit_lines(&sidecar_path(&paths[1]), |l| {
        l.remove(1);
    });
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(p.kind, ProblemKind::MissingCheckpoint);
}

#[test]
fn lines_appended_after_the_last_checkpoint_are_unverified_and_fail_strict() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    edit_lines(&paths[2], |l| l.push("appended".into()));
    let report = verify_dir(dir.path());
    assert!(report.ok, "{report:#?}");
    let unverified = report.trails[0].unverified.clone().unwrap();
    assert_eq!((unverified.first_line, unverified.lines), (11, 1));
    let report = verify(&[dir.path().to_owned()], true);
    let p = problem(&report);
    assert_eq!((p.kind, p.line), (ProblemKind::UnverifiedLines, Some(11)));
}

#[test]
fn pruned_oldest_files_are_a_note_and_fail_strict() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    std::fs::remove_file(&paths[0]).unwrap();
    std::fs::remove_file(sidecar_path(&paths[0])).unwrap();
    let report = verify_dir(dir.path());
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.trails[0].lines, 20);
    assert!(
        report.trails[0].notes[0].contains("file 1 of its trail"),
        "{:?}",
        report.trails[0].notes
    );
    let p = problem(&verify(&[dir.path().to_owned()], true));
    assert_eq!(p.kind, ProblemKind::EarlierFilesAbsent);
}

#[test]
fn a_deleted_live_file_is_missed_after_the_sealed_one() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    std::fs::remove_file(&paths[2]).unwrap();
    std::fs::remove_file(sidecar_path(&paths[2])).unwrap();
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(
        (p.kind, file_of(&p)),
        (ProblemKind::MissingFile, "audit-1.jsonl".into())
    );
}

#[test]
fn one_rotated_file_verifies_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    let report = verify(&[paths[1].clone()], false);
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.trails[0].lines, 10);
    // Its sidecar names it just as well.
    assert!(verify(&[sidecar_path(&paths[1])], false).ok);
}

#[test]
fn a_copied_file_in_place_of_another_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    std::fs::copy(&paths[0], &paths[1]).unwrap();
    std::fs::copy(sidecar_path(&paths[0]), sidecar_path(&paths[1])).unwrap();
    let p = problem(&verify_dir(dir.path()));
    assert_eq!(p.kind, ProblemKind::DuplicateFile);
}

#[test]
fn a_torn_checkpoint_line_is_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let paths = three_files(dir.path(), 3);
    let mut sidecar = std::fs::read(sidecar_path(&paths[2])).unwrap();
    sidecar.extend_from_slice(b"{\"v\":1,\"trail\":\"01");
    std::fs::write(sidecar_path(&paths[2]), sidecar).unwrap();
    let report = verify_dir(dir.path());
    assert!(report.ok, "{report:#?}");
    assert!(report.trails[0].notes[0].contains("torn"));
}

#[test]
fn a_path_without_sidecar_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.jsonl");
    std::fs::write(&plain, "x\n").unwrap();
    let report = verify(&[plain], false);
    assert_eq!(report.problems[0].kind, ProblemKind::NoTrail);
    let report = verify_dir(dir.path());
    assert_eq!(report.problems[0].kind, ProblemKind::NoTrail);
    assert!(!report.ok);
}

#[test]
fn a_verifier_with_the_wrong_algorithm_says_so() {
    let dir = tempfile::tempdir().unwrap();
    three_files(dir.path(), 3);
    let keys = tempfile::tempdir().unwrap();
    let files = auditcol_integrity::keys::write_key_pair(keys.path(), false).unwrap();
    let ed = TrailVerifier::from_pem_file(&files.public_key).unwrap();
    let report = verify_paths(
        &[dir.path().to_owned()],
        &ed,
        VerifyOptions::default(),
        &NoProgress,
    );
    let p = problem(&report);
    assert_eq!(p.kind, ProblemKind::BadSignature);
    assert!(p.message.contains("hmac-sha256"), "{}", p.message);
}

/// A single change to the lines of one file.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR a byte of a line with a non-zero value.
    Edit {
        line: usize,
        at: usize,
        xor: u8,
    },
    /// Insert a copy of line `from` before line `at` (`at` may be the end).
    Insert {
        from: usize,
        at: usize,
    },
    Delete {
        line: usize,
    },
    Swap {
        a: usize,
        b: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 1u8..=255).prop_map(|(line, at, xor)| Mutation::Edit {
            line,
            at,
            xor
        }),
        (any::<usize>(), any::<usize>()).prop_map(|(from, at)| Mutation::Insert { from, at }),
        any::<usize>().prop_map(|line| Mutation::Delete { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap { a, b }),
    ]
}

/// Applies `m` to the raw bytes of a file of `\n`-terminated lines; `None`
/// when it changes nothing (swapping two equal lines).
fn apply(data: &[u8], m: &Mutation) -> Option<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = data
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let n = lines.len();
    match *m {
        Mutation::Edit { line, at, xor } => {
            let line = &mut lines[line % n];
            let at = at % line.len();
            line[at] ^= xor;
        }
        Mutation::Insert { from, at } => {
            let copy = lines[from % n].clone();
            lines.insert(at % (n + 1), copy);
        }
        Mutation::Delete { line } => {
            lines.remove(line % n);
        }
        Mutation::Swap { a, b } => {
            let (a, b) = (a % n, b % n);
            if lines[a] == lines[b] {
                return None;
            }
            lines.swap(a, b);
        }
    }
    Some(lines.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_single_edit_insertion_deletion_or_swap_is_detected(
        files in prop::collection::vec(prop::collection::vec("[ -~]{0,40}", 1..12), 1..4),
        every in 1usize..6,
        which in any::<usize>(),
        m in mutation(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_trail(dir.path(), &files, every, &signer());
        prop_assert!(verify(&[dir.path().to_owned()], true).ok, "the untouched trail verifies");
        let target = &paths[which % paths.len()];
        let data = std::fs::read(target).unwrap();
        let Some(changed) = apply(&data, &m) else { return Ok(()) };
        prop_assume!(changed != data);
        std::fs::write(target, &changed).unwrap();
        let report = verify(&[dir.path().to_owned()], true);
        prop_assert!(!report.ok, "undetected: {m:?} in {}\n{report:#?}", target.display());
        // And named where it is: the first line that differs.
        let before: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
        let after: Vec<&[u8]> = changed.split_inclusive(|&b| b == b'\n').collect();
        let first = before.iter().zip(&after).take_while(|(a, b)| a == b).count() as u64 + 1;
        let p = problem(&report);
        prop_assert_eq!((p.file.as_deref(), p.line), (target.to_str(), Some(first)), "{:?}: {:#?}", m, p);
    }
}
