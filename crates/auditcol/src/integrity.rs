//! `auditcol keygen` and `auditcol verify`: the keys of the tamper-evident
//! trail, and its check (the logic is `auditcol_integrity`'s; this is the
//! command line around it).
//!
//! `verify` exits 0 when every trail checks out, 1 when it finds a problem
//! (or, with `--strict`, lines no checkpoint covers yet), 2 when it cannot
//! run (usage, an unreadable key, an unset environment variable).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use auditcol_integrity::verify::{Progress, Report, TrailReport};
use auditcol_integrity::{TrailVerifier, VerifyOptions, verify_paths};

/// The arguments of `auditcol keygen`.
#[derive(clap::Args, Debug)]
pub struct KeygenArgs {
    /// The directory to write auditcol-signing.pem (private, mode 0600) and
    /// auditcol-signing.pub.pem into; created if missing.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Replace existing key files (the trail they signed can then only be
    /// checked with the old public key: keep a copy of it).
    #[arg(long)]
    force: bool,
}

/// The arguments of `auditcol verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The Ed25519 public key (PEM) the trail was signed with: auditcol-signing.pub.pem.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "hmac_key_env",
        conflicts_with = "hmac_key_env"
    )]
    public_key: Option<PathBuf>,

    /// The environment variable holding the `hmac_key` the trail was signed with.
    #[arg(long, value_name = "NAME")]
    hmac_key_env: Option<String>,

    /// Fail on lines after the last checkpoint (written since, or appended by
    /// someone) and on files of the trail absent before the first one given.
    #[arg(long)]
    strict: bool,

    /// Print a machine-readable report (JSON) instead of text.
    #[arg(long)]
    json: bool,

    /// Output files (their `.chain` sidecar beside them), or directories
    /// holding a rotated trail (every `*.chain` in them).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Runs `auditcol keygen`.
pub fn keygen(args: KeygenArgs) -> ExitCode {
    match auditcol_integrity::keys::write_key_pair(&args.out, args.force) {
        Ok(files) => {
            println!(
                "wrote {} (private key, mode 0600: only the collector should read it)",
                files.private_key.display()
            );
            println!(
                "wrote {} (public key: for whoever checks the trail)",
                files.public_key.display()
            );
            println!("key id {}", files.key_id);
            println!();
            println!("In the file exporter's config:");
            println!("    integrity:");
            println!("      signing_key_file: {}", files.private_key.display());
            println!("To check a trail:");
            println!(
                "    auditcol verify --public-key {} <file or directory>",
                files.public_key.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `auditcol verify`.
pub fn verify(args: VerifyArgs) -> ExitCode {
    let key = match (&args.public_key, &args.hmac_key_env) {
        (Some(path), _) => TrailVerifier::from_pem_file(path).map_err(|e| e.to_string()),
        (None, Some(name)) => match std::env::var(name) {
            Ok(secret) if !secret.is_empty() => Ok(TrailVerifier::hmac(secret.as_bytes())),
            Ok(_) => Err(format!("the environment variable {name} is empty")),
            Err(_) => Err(format!(
                "the environment variable {name} is not set (--hmac-key-env names the variable holding the key, not the key)"
            )),
        },
        (None, None) => Err("give --public-key FILE or --hmac-key-env NAME".to_owned()),
    };
    let key = match key {
        Ok(key) => key,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let options = VerifyOptions {
        strict: args.strict,
    };
    let started = Instant::now();
    let report = if !args.json && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new();
        let report = verify_paths(&args.paths, &key, options, &bar);
        bar.0.finish_and_clear();
        report
    } else {
        verify_paths(
            &args.paths,
            &key,
            options,
            &auditcol_integrity::verify::NoProgress,
        )
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => print(&format!("{json}\n")),
            Err(e) => {
                eprintln!("error: cannot write the report: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print(&text(&report));
        if std::io::stderr().is_terminal() {
            let bytes: u64 = report.trails.iter().map(|t| t.bytes).sum();
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "checked {:.1} MB in {seconds:.2} s ({:.0} MB/s)",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / seconds.max(1e-9)
            );
        }
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The text report: a line per trail (`OK: …` or `FAILED: …`) and its notes.
fn text(report: &Report) -> String {
    let mut out = String::new();
    for problem in &report.problems {
        out.push_str(&format!("FAILED: {problem}\n"));
    }
    for trail in &report.trails {
        match &trail.problem {
            None => out.push_str(&ok_line(trail)),
            Some(problem) => out.push_str(&format!(
                "FAILED: trail {} (exporter {}): {problem}",
                trail.trail, trail.exporter
            )),
        }
        out.push('\n');
        for note in &trail.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
    }
    out
}

/// `OK: <N> lines in <F> files, trail <id>, last checkpoint <time>`
fn ok_line(trail: &TrailReport) -> String {
    let files = trail.files.len();
    format!(
        "OK: {} lines in {files} {}, trail {}, last checkpoint {}",
        trail.lines,
        if files == 1 { "file" } else { "files" },
        trail.trail,
        trail.last_checkpoint.as_deref().unwrap_or("-")
    )
}

/// An `indicatif` bar over the bytes of the output files.
struct ProgressBar(indicatif::ProgressBar);

impl ProgressBar {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} verifying {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec}, {eta} left",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self(bar)
    }
}

impl Progress for ProgressBar {
    fn begin(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}
