//! The verifier behind `auditcol verify`: checks every checkpoint's
//! signature, recomputes the chain over every line, checks how the files of
//! a trail follow each other, and reports the first problem of each trail.
//!
//! Files are found through their sidecars: a directory means every
//! `*.chain` in it (a whole rotated trail: a missing file in the middle, or
//! after a sealed one, is a problem); a file means that file alone (its
//! neighbours are not required).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::chain::{ChainHasher, Head, LINE_HEAD_PREFIX, genesis};
use crate::checkpoint::Checkpoint;
use crate::keys::TrailVerifier;
use crate::sidecar::{SIDECAR_SUFFIX, TornTail, data_path, read_sidecar, sidecar_path};

/// Bytes read from a file at a time: large reads keep the hashing loop busy.
const READ_CHUNK: usize = 4 << 20;

/// Checkpoints of one file at or above which signatures are checked on
/// several threads.
const PARALLEL_SIGNATURES: usize = 512;

/// How strict to be.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Lines after the last checkpoint, and files of the trail absent before
    /// the first one present (pruned by rotation or deleted), are problems
    /// rather than notes.
    pub strict: bool,
}

/// Told how far the verification is, for a progress bar.
pub trait Progress {
    /// Before any data is read: how many bytes of output files there are.
    fn begin(&self, _total_bytes: u64) {}
    /// After each read.
    fn advance(&self, _bytes: u64) {}
    /// When done.
    fn end(&self) {}
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What kind of problem, as written in the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Lines do not hash to the head a checkpoint signed: a line changed,
    /// inserted, deleted or moved.
    LineMismatch,
    /// The file ends before what a checkpoint covers.
    Truncated,
    /// A checkpoint's signature does not verify with the key given.
    BadSignature,
    /// A sidecar line that is not a valid checkpoint, or checkpoints that
    /// contradict each other.
    BadCheckpoint,
    /// Checkpoint numbers jump: one was removed.
    MissingCheckpoint,
    /// A file of the trail is missing (in the middle, or after a sealed one).
    MissingFile,
    /// A sidecar whose output file is missing.
    MissingData,
    /// Two files claim the same place in the trail.
    DuplicateFile,
    /// A file does not continue the chain of the file before it.
    NotLinked,
    /// The first file of the trail does not start from the trail's `h_0`.
    WrongStart,
    /// Lines after the last checkpoint (a problem with `--strict`).
    UnverifiedLines,
    /// Files absent before the first one present (a problem with `--strict`).
    EarlierFilesAbsent,
    /// Nothing to verify.
    NoTrail,
    /// A file cannot be read.
    Io,
}

/// One problem: where and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The kind.
    pub kind: ProblemKind,
    /// The output file concerned, as given or found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The first line concerned (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The last line concerned, when a range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_line: Option<u64>,
    /// The sidecar concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<String>,
    /// The sidecar line concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_line: Option<u64>,
    /// What is wrong, for a person.
    pub message: String,
}

impl Problem {
    fn new(kind: ProblemKind, message: impl Into<String>) -> Self {
        Problem {
            kind,
            file: None,
            line: None,
            last_line: None,
            sidecar: None,
            sidecar_line: None,
            message: message.into(),
        }
    }

    fn file(mut self, path: &Path) -> Self {
        self.file = Some(path.display().to_string());
        self
    }

    fn lines(mut self, first: u64, last: u64) -> Self {
        self.line = Some(first);
        self.last_line = (last != first).then_some(last);
        self
    }

    fn sidecar(mut self, path: &Path, line: Option<u64>) -> Self {
        self.sidecar = Some(path.display().to_string());
        self.sidecar_line = line;
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line, self.last_line) {
            (Some(file), Some(first), Some(last)) => write!(f, "{file} lines {first}-{last}: ")?,
            (Some(file), Some(line), None) => write!(f, "{file} line {line}: ")?,
            _ => match (&self.sidecar, self.sidecar_line, &self.file) {
                (Some(sidecar), Some(line), _) => write!(f, "{sidecar} line {line}: ")?,
                (_, _, Some(file)) => write!(f, "{file}: ")?,
                (Some(sidecar), None, None) => write!(f, "{sidecar}: ")?,
                _ => {}
            },
        }
        f.write_str(&self.message)
    }
}

/// Lines at the end of a trail that no checkpoint covers yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unverified {
    /// The file.
    pub file: String,
    /// The first line not covered.
    pub first_line: u64,
    /// Complete lines not covered.
    pub lines: u64,
    /// Bytes of a last line without its `\n` (a write cut by a crash).
    pub partial_bytes: u64,
}

/// One verified file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// The output file.
    pub path: String,
    /// Its place in the trail.
    pub file_seq: u64,
    /// Complete lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Checkpoints in its sidecar.
    pub checkpoints: u64,
    /// Whether rotation sealed it.
    pub sealed: bool,
}

/// The verdict on one trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailReport {
    /// The trail id.
    pub trail: String,
    /// The exporter that began it.
    pub exporter: String,
    /// No problem.
    pub ok: bool,
    /// The files read, in trail order (up to the problem, if any).
    pub files: Vec<FileSummary>,
    /// Lines verified (covered by a checkpoint or by the next file's link).
    pub lines: u64,
    /// Bytes of those lines.
    pub bytes: u64,
    /// The time of the trail's last checkpoint.
    pub last_checkpoint: Option<String>,
    /// Lines after the last checkpoint.
    pub unverified: Option<Unverified>,
    /// Facts worth knowing that are not problems (absent earlier files,
    /// torn sidecar lines, unverified lines without `--strict`).
    pub notes: Vec<String>,
    /// The first problem found.
    pub problem: Option<Problem>,
}

/// The whole verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every trail is OK and nothing else went wrong.
    pub ok: bool,
    /// Whether `--strict` was given.
    pub strict: bool,
    /// One entry per trail found.
    pub trails: Vec<TrailReport>,
    /// Problems outside any trail (a path without sidecar, a sidecar without
    /// a single checkpoint).
    pub problems: Vec<Problem>,
}

/// One output file with its sidecar, as found.
struct Found {
    data: PathBuf,
    sidecar: PathBuf,
    /// Found by listing a directory: the trail's neighbours are expected there.
    complete: bool,
}

/// A file read for its trail.
struct TrailFile {
    found: Found,
    checkpoints: Vec<(u64, Checkpoint)>,
    /// The first sidecar line that is not a checkpoint.
    bad_line: Option<(u64, String)>,
    torn: Option<TornTail>,
    file_seq: u64,
}

/// Verifies the trails found at `paths` (files or directories) with `key`.
pub fn verify_paths(
    paths: &[PathBuf],
    key: &TrailVerifier,
    options: VerifyOptions,
    progress: &dyn Progress,
) -> Report {
    let mut problems = Vec::new();
    let found = find(paths, &mut problems);
    let mut trails: BTreeMap<String, Vec<TrailFile>> = BTreeMap::new();
    for found in found {
        let sidecar = match read_sidecar(&found.sidecar) {
            Ok(s) => s,
            Err(e) => {
                problems.push(
                    Problem::new(ProblemKind::Io, format!("cannot read: {e}"))
                        .sidecar(&found.sidecar, None),
                );
                continue;
            }
        };
        let mut checkpoints = Vec::new();
        let mut bad_line = None;
        for entry in sidecar.entries {
            match entry.checkpoint {
                Ok(c) => checkpoints.push((entry.line, c)),
                Err(e) => {
                    bad_line.get_or_insert((entry.line, e));
                }
            }
        }
        let Some((_, first)) = checkpoints.first() else {
            let message = match &bad_line {
                Some((_, e)) => format!("holds no valid checkpoint (line 1: {e})"),
                None => "holds no checkpoint".to_owned(),
            };
            problems.push(
                Problem::new(ProblemKind::BadCheckpoint, message)
                    .sidecar(&found.sidecar, bad_line.as_ref().map(|(l, _)| *l))
                    .file(&found.data),
            );
            continue;
        };
        let (trail, file_seq) = (first.trail.clone(), first.file_seq);
        trails.entry(trail).or_default().push(TrailFile {
            found,
            checkpoints,
            bad_line,
            torn: sidecar.torn,
            file_seq,
        });
    }
    if trails.is_empty() && problems.is_empty() {
        problems.push(Problem::new(
            ProblemKind::NoTrail,
            "no trail found: give output files that have a `.chain` sidecar, or directories holding them",
        ));
    }
    let total: u64 = trails
        .values()
        .flatten()
        .filter_map(|f| std::fs::metadata(&f.found.data).ok())
        .map(|m| m.len())
        .sum();
    progress.begin(total);
    let mut reports: Vec<TrailReport> = trails
        .into_iter()
        .map(|(trail, mut files)| {
            files.sort_by(|a, b| (a.file_seq, &a.found.data).cmp(&(b.file_seq, &b.found.data)));
            verify_trail(trail, &files, key, options, progress)
        })
        .collect();
    progress.end();
    reports.sort_by(|a, b| {
        let first = |r: &TrailReport| r.files.first().map(|f| f.path.clone());
        first(a).cmp(&first(b))
    });
    Report {
        ok: problems.is_empty() && reports.iter().all(|r| r.ok),
        strict: options.strict,
        trails: reports,
        problems,
    }
}

/// The output files and sidecars named by `paths`.
fn find(paths: &[PathBuf], problems: &mut Vec<Problem>) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let mut add = |f: Found| {
        let key = std::fs::canonicalize(&f.sidecar).unwrap_or_else(|_| f.sidecar.clone());
        let known = found.iter().any(|g| {
            std::fs::canonicalize(&g.sidecar).unwrap_or_else(|_| g.sidecar.clone()) == key
        });
        if !known {
            found.push(f);
        }
    };
    for path in paths {
        if path.is_dir() {
            let entries = match std::fs::read_dir(path) {
                Ok(entries) => entries,
                Err(e) => {
                    problems.push(
                        Problem::new(ProblemKind::Io, format!("cannot list: {e}")).file(path),
                    );
                    continue;
                }
            };
            let mut sidecars: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.to_string_lossy().ends_with(SIDECAR_SUFFIX))
                .collect();
            sidecars.sort();
            if sidecars.is_empty() {
                problems.push(
                    Problem::new(
                        ProblemKind::NoTrail,
                        "no `.chain` sidecar here: was `integrity` set on the exporter writing to it?",
                    )
                    .file(path),
                );
            }
            for sidecar in sidecars {
                if let Some(data) = data_path(&sidecar) {
                    add(Found {
                        data,
                        sidecar,
                        complete: true,
                    });
                }
            }
        } else {
            let (data, sidecar) = match data_path(path) {
                Some(data) => (data, path.clone()),
                None => (path.clone(), sidecar_path(path)),
            };
            if !sidecar.exists() {
                let message = if data.exists() {
                    format!(
                        "has no sidecar {}: it was not written with `integrity`, or its sidecar was deleted",
                        sidecar.display()
                    )
                } else {
                    "does not exist".to_owned()
                };
                problems.push(Problem::new(ProblemKind::NoTrail, message).file(&data));
                continue;
            }
            add(Found {
                data,
                sidecar,
                complete: false,
            });
        }
    }
    found
}

/// What the checks of one file hand on to the next one.
struct Link {
    file_seq: u64,
    final_head: Head,
    last_seq: u64,
    data: PathBuf,
    /// Lines after the file's last checkpoint: verified only by the next
    /// file's `previous_head`.
    tail_lines: u64,
}

fn verify_trail(
    trail: String,
    files: &[TrailFile],
    key: &TrailVerifier,
    options: VerifyOptions,
    progress: &dyn Progress,
) -> TrailReport {
    let exporter = files[0].checkpoints[0].1.exporter.clone();
    let mut report = TrailReport {
        trail,
        exporter,
        ok: true,
        files: Vec::new(),
        lines: 0,
        bytes: 0,
        last_checkpoint: None,
        unverified: None,
        notes: Vec::new(),
        problem: None,
    };
    if let Err(problem) = walk(files, key, options, progress, &mut report) {
        report.ok = false;
        report.problem = Some(*problem);
    }
    report
}

fn walk(
    files: &[TrailFile],
    key: &TrailVerifier,
    options: VerifyOptions,
    progress: &dyn Progress,
    report: &mut TrailReport,
) -> Result<(), Box<Problem>> {
    let complete = files.iter().any(|f| f.found.complete);
    let mut previous: Option<Link> = None;
    for (i, file) in files.iter().enumerate() {
        let is_last = i + 1 == files.len();
        check_sidecar(file, key, &report.exporter)?;
        let first = &file.checkpoints[0].1;
        let last = &file.checkpoints[file.checkpoints.len() - 1].1;
        match &previous {
            None if file.file_seq == 0 => {
                let h0 = genesis(&first.exporter, &first.trail);
                if first.previous_head != h0 {
                    return Err(Problem::new(
                        ProblemKind::WrongStart,
                        "claims to be the first file of its trail but does not start from the trail's h_0",
                    )
                    .file(&file.found.data)
                    .sidecar(&file.found.sidecar, Some(file.checkpoints[0].0))
                    .into());
                }
            }
            None => {
                let message = format!(
                    "is file {} of its trail: the {} before it {} not here (pruned by rotation's max_backups, archived, or deleted); the chain is checked from this file on",
                    file.file_seq,
                    plural(file.file_seq, "file"),
                    if file.file_seq == 1 { "is" } else { "are" }
                );
                if options.strict {
                    return Err(Problem::new(ProblemKind::EarlierFilesAbsent, message)
                        .file(&file.found.data)
                        .into());
                }
                report
                    .notes
                    .push(format!("{}: {message}", file.found.data.display()));
            }
            Some(prev) if prev.file_seq == file.file_seq => {
                return Err(Problem::new(
                    ProblemKind::DuplicateFile,
                    format!(
                        "claims the same place in the trail (file {}) as {}: one of them was copied or replaced",
                        file.file_seq,
                        prev.data.display()
                    ),
                )
                .file(&file.found.data)
                .into());
            }
            Some(prev) if file.file_seq > prev.file_seq + 1 => {
                let missing = file.file_seq - prev.file_seq - 1;
                let message = format!(
                    "{} of the trail {} missing between {} and {} (file {} of the trail)",
                    plural(missing, "file"),
                    if missing == 1 { "is" } else { "are" },
                    prev.data.display(),
                    file.found.data.display(),
                    if missing == 1 {
                        (prev.file_seq + 1).to_string()
                    } else {
                        format!("{}-{}", prev.file_seq + 1, file.file_seq - 1)
                    }
                );
                if complete {
                    return Err(Problem::new(ProblemKind::MissingFile, message)
                        .file(&file.found.data)
                        .into());
                }
                report.notes.push(message);
            }
            Some(prev) => {
                if first.previous_head != prev.final_head {
                    let message = if prev.tail_lines > 0 {
                        format!(
                            "does not continue the chain of {}: its last {} (after its last checkpoint) were changed, or this file is not the one that followed it",
                            prev.data.display(),
                            plural(prev.tail_lines, "line")
                        )
                    } else {
                        format!(
                            "does not continue the chain of {}: this file is not the one that followed it (replaced?)",
                            prev.data.display()
                        )
                    };
                    return Err(Problem::new(ProblemKind::NotLinked, message)
                        .file(&file.found.data)
                        .sidecar(&file.found.sidecar, Some(file.checkpoints[0].0))
                        .into());
                }
                if first.seq != prev.last_seq + 1 {
                    return Err(Problem::new(
                        ProblemKind::MissingCheckpoint,
                        format!(
                            "its first checkpoint is number {} but the last of {} is number {}: checkpoints were removed",
                            first.seq,
                            prev.data.display(),
                            prev.last_seq
                        ),
                    )
                    .sidecar(&file.found.sidecar, Some(file.checkpoints[0].0))
                    .into());
                }
                report.lines += prev.tail_lines;
            }
        }
        let scan = scan_data(file, progress)?;
        report.files.push(FileSummary {
            path: file.found.data.display().to_string(),
            file_seq: file.file_seq,
            lines: scan.lines,
            bytes: scan.bytes,
            checkpoints: file.checkpoints.len() as u64,
            sealed: last.sealed,
        });
        report.lines += last.last_line;
        report.bytes += scan.bytes;
        report.last_checkpoint = Some(last.time.clone());
        if let Some(torn) = file.torn {
            report.notes.push(format!(
                "{}: its last line ({} bytes) is a checkpoint torn by a crash while it was written; ignored",
                file.found.sidecar.display(),
                torn.len
            ));
        }
        let tail_lines = scan.lines - last.last_line;
        if last.sealed && (tail_lines > 0 || scan.partial > 0) {
            return Err(Problem::new(
                ProblemKind::LineMismatch,
                format!(
                    "follows the checkpoint that sealed this file at rotation ({} line {}): nothing was written after it, so the line was added since",
                    file.found.sidecar.display(),
                    file.checkpoints[file.checkpoints.len() - 1].0
                ),
            )
            .file(&file.found.data)
            .lines(last.last_line + 1, last.last_line + 1)
            .into());
        }
        if scan.partial > 0 && !is_last {
            return Err(Problem::new(
                ProblemKind::LineMismatch,
                format!(
                    "ends with {} bytes without a newline, but the trail goes on in another file: the file was cut or changed",
                    scan.partial
                ),
            )
            .file(&file.found.data)
            .lines(scan.lines + 1, scan.lines + 1)
            .into());
        }
        if is_last && (tail_lines > 0 || scan.partial > 0) {
            let unverified = Unverified {
                file: file.found.data.display().to_string(),
                first_line: last.last_line + 1,
                lines: tail_lines,
                partial_bytes: scan.partial,
            };
            let mut message = if tail_lines > 0 {
                format!(
                    "{} after the last checkpoint {} not verified (written since, or appended by someone else)",
                    plural(tail_lines, "line"),
                    if tail_lines == 1 { "is" } else { "are" }
                )
            } else {
                String::new()
            };
            if scan.partial > 0 {
                if !message.is_empty() {
                    message.push_str("; ");
                }
                message.push_str(&format!(
                    "the file ends with {} bytes of a line without its newline (a write in progress, or cut by a crash)",
                    scan.partial
                ));
            }
            if options.strict {
                report.unverified = Some(unverified);
                return Err(Problem::new(ProblemKind::UnverifiedLines, message)
                    .file(&file.found.data)
                    .lines(last.last_line + 1, scan.lines.max(last.last_line + 1))
                    .into());
            }
            report.notes.push(format!(
                "{} line {}: {message}",
                file.found.data.display(),
                last.last_line + 1
            ));
            report.unverified = Some(unverified);
        }
        previous = Some(Link {
            file_seq: file.file_seq,
            final_head: scan.final_head,
            last_seq: last.seq,
            data: file.found.data.clone(),
            tail_lines,
        });
        if is_last && last.sealed {
            let message = format!(
                "was sealed by rotation at {}: the trail goes on in file {} of the trail, which is missing",
                last.time,
                file.file_seq + 1
            );
            if complete {
                return Err(Problem::new(ProblemKind::MissingFile, message)
                    .file(&file.found.data)
                    .into());
            }
            report
                .notes
                .push(format!("{}: {message}", file.found.data.display()));
        }
    }
    Ok(())
}

/// Signatures and the consistency of one sidecar's checkpoints.
fn check_sidecar(
    file: &TrailFile,
    key: &TrailVerifier,
    exporter: &str,
) -> Result<(), Box<Problem>> {
    let sidecar = &file.found.sidecar;
    if let Some((line, error)) = &file.bad_line {
        return Err(Problem::new(
            ProblemKind::BadCheckpoint,
            format!("not a valid checkpoint: {error}"),
        )
        .sidecar(sidecar, Some(*line))
        .into());
    }
    if let Some((line, problem)) = first_bad_signature(&file.checkpoints, key) {
        let covered = file
            .checkpoints
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, c)| c);
        let mut p = Problem::new(ProblemKind::BadSignature, problem.to_string())
            .sidecar(sidecar, Some(line));
        if let Some(c) = covered {
            let lines = if c.first_line > c.last_line {
                "covering no line yet".to_owned()
            } else {
                format!("lines {}-{}", c.first_line, c.last_line)
            };
            p.message = format!(
                "{} (checkpoint {} of {}, {lines})",
                p.message,
                c.seq,
                file.found.data.display(),
            );
        }
        return Err(p.into());
    }
    let first = &file.checkpoints[0].1;
    let mut previous: Option<&Checkpoint> = None;
    for (line, c) in &file.checkpoints {
        let bad = |message: String| -> Box<Problem> {
            Problem::new(ProblemKind::BadCheckpoint, message)
                .sidecar(sidecar, Some(*line))
                .into()
        };
        if c.trail != first.trail
            || c.file_seq != first.file_seq
            || c.previous_head != first.previous_head
        {
            return Err(bad(
                "belongs to another trail or file than the sidecar's first checkpoint".into(),
            ));
        }
        if c.exporter != exporter {
            return Err(bad(format!(
                "names exporter {} but the trail was begun by {exporter}",
                c.exporter
            )));
        }
        if c.last_line == 0 && (c.bytes != 0 || c.head != c.previous_head) {
            return Err(bad(
                "covers no line but its head or length is not the start's".into(),
            ));
        }
        match previous {
            None => {
                if c.first_line != 1 {
                    return Err(bad(format!(
                        "is the first checkpoint of the file but starts at line {}",
                        c.first_line
                    )));
                }
            }
            Some(p) => {
                if c.seq != p.seq + 1 {
                    return Err(Problem::new(
                        ProblemKind::MissingCheckpoint,
                        format!(
                            "checkpoint number {} follows number {}: checkpoints were removed",
                            c.seq, p.seq
                        ),
                    )
                    .sidecar(sidecar, Some(*line))
                    .into());
                }
                if c.first_line != p.last_line + 1 || c.bytes < p.bytes {
                    return Err(bad(format!(
                        "covers lines {}-{} ({} bytes) after a checkpoint that covered lines up to {} ({} bytes)",
                        c.first_line, c.last_line, c.bytes, p.last_line, p.bytes
                    )));
                }
                if p.sealed {
                    return Err(bad(
                        "follows a sealed checkpoint: nothing may follow one".into()
                    ));
                }
            }
        }
        previous = Some(c);
    }
    Ok(())
}

/// The sidecar line of the first checkpoint whose signature fails, and why.
fn first_bad_signature(
    checkpoints: &[(u64, Checkpoint)],
    key: &TrailVerifier,
) -> Option<(u64, crate::checkpoint::SignatureProblem)> {
    let check = |part: &[(u64, Checkpoint)]| {
        part.iter()
            .find_map(|(line, c)| c.verify_signature(key).err().map(|e| (*line, e)))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if checkpoints.len() < PARALLEL_SIGNATURES || threads == 1 {
        return check(checkpoints);
    }
    let per_thread = checkpoints.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = checkpoints
            .chunks(per_thread)
            .map(|part| scope.spawn(move || check(part)))
            .collect();
        // Joined in order: the first failure in sidecar order wins.
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .next()
    })
}

/// What reading one output file found.
struct Scan {
    /// Complete lines.
    lines: u64,
    /// Bytes read (complete lines and a partial last one).
    bytes: u64,
    /// Bytes of a last line without `\n`.
    partial: u64,
    /// The head after the last complete line.
    final_head: Head,
}

/// Hashes the file's lines and compares them with each checkpoint.
fn scan_data(file: &TrailFile, progress: &dyn Progress) -> Result<Scan, Box<Problem>> {
    let data = &file.found.data;
    let sidecar = &file.found.sidecar;
    let mut input = match File::open(data) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Problem::new(
                ProblemKind::MissingData,
                format!(
                    "is missing, but its sidecar {} is here: the file was deleted or renamed",
                    sidecar.display()
                ),
            )
            .file(data)
            .into());
        }
        Err(e) => {
            return Err(Problem::new(ProblemKind::Io, format!("cannot read: {e}"))
                .file(data)
                .into());
        }
    };
    let first = &file.checkpoints[0].1;
    let mut chain = ChainHasher::new(first.previous_head);
    let mut next = 0;
    let mut buffer = vec![0u8; READ_CHUNK];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Problem::new(ProblemKind::Io, format!("cannot read: {e}"))
                    .file(data)
                    .into());
            }
        };
        progress.advance(n as u64);
        let mut chunk = &buffer[..n];
        loop {
            // Checkpoints that the lines hashed so far reach.
            while let Some((line, c)) = file.checkpoints.get(next) {
                if chain.lines() < c.last_line {
                    break;
                }
                compare(&chain, *line, c, data, sidecar)?;
                chain.take_line_heads();
                next += 1;
            }
            if chunk.is_empty() {
                break;
            }
            let until = file
                .checkpoints
                .get(next)
                .map_or(u64::MAX, |(_, c)| c.last_line);
            let taken = chain.feed_until(chunk, until);
            chunk = &chunk[taken..];
        }
    }
    while let Some((line, c)) = file.checkpoints.get(next) {
        if chain.lines() < c.last_line {
            if let Some(differs) = first_differing_line(&chain, c) {
                return Err(mismatch(differs, c, *line, data, sidecar, None));
            }
            let cut = chain.lines() + 1;
            let message = if chain.partial_len() > 0 {
                format!(
                    "the file ends in the middle of line {cut}, at byte {}; checkpoint {} (sidecar line {line}) covers lines up to {} ({} bytes): the file was cut short",
                    chain.bytes() + chain.partial_len(),
                    c.seq,
                    c.last_line,
                    c.bytes
                )
            } else {
                format!(
                    "the file ends after line {}, at byte {}; checkpoint {} (sidecar line {line}) covers lines up to {} ({} bytes): lines were deleted or the file was cut short",
                    chain.lines(),
                    chain.bytes(),
                    c.seq,
                    c.last_line,
                    c.bytes
                )
            };
            return Err(Problem::new(ProblemKind::Truncated, message)
                .file(data)
                .lines(cut, cut)
                .sidecar(sidecar, Some(*line))
                .into());
        }
        compare(&chain, *line, c, data, sidecar)?;
        chain.take_line_heads();
        next += 1;
    }
    Ok(Scan {
        lines: chain.lines(),
        bytes: chain.bytes() + chain.partial_len(),
        partial: chain.partial_len(),
        final_head: chain.head(),
    })
}

/// Lines hashed up to `c.last_line` against checkpoint `c`.
fn compare(
    chain: &ChainHasher,
    sidecar_line: u64,
    c: &Checkpoint,
    data: &Path,
    sidecar: &Path,
) -> Result<(), Box<Problem>> {
    if chain.head() == c.head && chain.bytes() == c.bytes {
        return Ok(());
    }
    let lengths = (chain.bytes() != c.bytes).then_some(chain.bytes());
    Err(match first_differing_line(chain, c) {
        Some(line) => mismatch(line, c, sidecar_line, data, sidecar, lengths),
        None => {
            // Every recorded prefix matches (or there were none): the
            // change is somewhere in the checkpoint's lines.
            let (first, last) = (c.first_line.min(c.last_line), c.last_line);
            let mut message = format!(
                "one of these lines does not match the trail: one was changed, or a line was inserted, deleted or moved among them{}",
                signed_by(c, sidecar_line, sidecar)
            );
            if let Some(bytes) = lengths {
                message.push_str(&format!(
                    "; up to line {last} the file holds {bytes} bytes, the checkpoint says {}",
                    c.bytes
                ));
            }
            Problem::new(ProblemKind::LineMismatch, message)
                .file(data)
                .lines(first, last)
                .into()
        }
    })
}

/// The first line since the last checkpoint whose head differs from the
/// prefix `c` recorded for it.
fn first_differing_line(chain: &ChainHasher, c: &Checkpoint) -> Option<u64> {
    if c.line_heads.0.is_empty() {
        return None;
    }
    chain
        .line_heads()
        .chunks_exact(LINE_HEAD_PREFIX)
        .zip(c.first_line..)
        .find(|(prefix, line)| c.line_head(*line) != Some(*prefix))
        .map(|(_, line)| line)
}

fn mismatch(
    line: u64,
    c: &Checkpoint,
    sidecar_line: u64,
    data: &Path,
    sidecar: &Path,
    lengths: Option<u64>,
) -> Box<Problem> {
    let mut message = format!(
        "does not match the trail: this line was changed, or a line was inserted, deleted or moved here{}",
        signed_by(c, sidecar_line, sidecar)
    );
    if let Some(bytes) = lengths {
        message.push_str(&format!(
            "; up to line {} the file holds {bytes} bytes, the checkpoint says {}",
            c.last_line, c.bytes
        ));
    }
    Problem::new(ProblemKind::LineMismatch, message)
        .file(data)
        .lines(line, line)
        .into()
}

/// ` (checkpoint 7 at x.chain line 8, written <time>)`
fn signed_by(c: &Checkpoint, sidecar_line: u64, sidecar: &Path) -> String {
    format!(
        " (checkpoint {} at {} line {sidecar_line}, written {})",
        c.seq,
        sidecar.display(),
        c.time
    )
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
