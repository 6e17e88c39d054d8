//! `auditcol`: run the collector, validate a config, or send audit events.

use std::path::PathBuf;
use std::process::ExitCode;

use auditcol_core::config::{ConfigDuration, ConfigOverride, LogEncoding, LogsConfig};
use clap::{Parser, Subcommand};

mod graph;
mod integrity;
mod send;

// The hot path allocates per record (OTLP decode owns every string); glibc's
// malloc spent ~30% of CPU in profiles, mimalloc a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A collector for audit events: OTLP, Flipt and Flagsmith in; files,
/// webhooks, Kafka and OTLP backends out.
#[derive(Parser)]
#[command(name = "auditcol", version, about)]
struct Cli {
    /// The collector config (YAML). Without it, the embedded default runs:
    /// OTLP gRPC on 127.0.0.1:4317 and HTTP on 127.0.0.1:4318, every audit
    /// event printed to stdout as a console line.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// How long shutdown may take to flush processors and drain exporters.
    #[arg(long, default_value = "30s", value_parser = ConfigDuration::parse)]
    shutdown_timeout: ConfigDuration,

    /// Sets a config key over the file, as the Collector's --set: keys
    /// separated by `::`, a YAML value, e.g.
    /// --set=service::telemetry::metrics::address=127.0.0.1:9888. Repeatable.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = ConfigOverride::parse)]
    set: Vec<ConfigOverride>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config without starting anything: prints `OK` (exit 0) or the error (exit 1).
    Validate {
        /// Also check that what components connect to answers (Kafka brokers
        /// reachable, topics exist): one line per component, exit 1 if one fails.
        #[arg(long)]
        check_connectivity: bool,
    },
    /// Draw how the config wires receivers → processors → exporters, per pipeline.
    Graph {
        /// `mermaid` (renders in Markdown on GitHub) or `dot` (Graphviz).
        #[arg(long, value_enum, default_value = "mermaid")]
        format: graph::GraphFormat,
    },
    /// Print the config as the collector understands it: every component's
    /// settings with their defaults filled in, secrets masked as `[REDACTED]`.
    ///
    ///   auditcol print-config --config collector.yaml
    ///
    /// Exit status: 0 printed; 1 the config is invalid (the error is printed instead).
    #[command(verbatim_doc_comment)]
    PrintConfig {
        /// `yaml` or `json`.
        #[arg(long, value_enum, default_value = "yaml")]
        format: PrintFormat,
    },
    /// Send audit events to a collector (or any OTLP endpoint) and report whether they arrived.
    ///
    /// One event from flags:
    ///   auditcol send --type flag --action created --actor email=kyle@example.com --payload '{"key":"dark-mode"}'
    ///
    /// Flipt v0.2 JSON events from standard input, one per line:
    ///   auditcol send --stdin --protocol http/protobuf < events.jsonl
    ///
    /// Exit status: 0 every event delivered; 1 not delivered (refused, unreachable, no
    /// answer within the timeout) or bad input (invalid name, payload not JSON, bad line);
    /// 2 usage error.
    #[command(verbatim_doc_comment)]
    Send(Box<send::SendArgs>),
    /// Create an Ed25519 key pair for the file exporter's `integrity` trail.
    ///
    ///   auditcol keygen --out /etc/auditcol/keys
    ///
    /// writes auditcol-signing.pem (private key, mode 0600; set it as
    /// `integrity.signing_key_file`) and auditcol-signing.pub.pem (for
    /// `auditcol verify --public-key`). Existing files are kept unless --force.
    #[command(verbatim_doc_comment)]
    Keygen(integrity::KeygenArgs),
    /// Check that a trail written with `integrity` was not edited: signatures, the hash chain
    /// over every line, the sequence of rotated files.
    ///
    ///   auditcol verify --public-key auditcol-signing.pub.pem /var/log/auditcol/
    ///   auditcol verify --hmac-key-env AUDITCOL_TRAIL_KEY audit.jsonl
    ///
    /// Prints `OK: <N> lines in <F> files, trail <id>, last checkpoint <time>` per trail, or the
    /// first problem with its file and line. Exit status: 0 OK; 1 a problem (or, with --strict,
    /// lines no checkpoint covers yet); 2 it could not run (usage, key).
    #[command(verbatim_doc_comment)]
    Verify(integrity::VerifyArgs),
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    let runs_a_collector = matches!(
        cli.command,
        None | Some(Command::Validate { .. } | Command::Graph { .. })
    );
    if !cli.set.is_empty() && !runs_a_collector {
        eprintln!("error: --set is for running, validating or drawing a collector's config");
        return ExitCode::from(2);
    }
    match cli.command {
        Some(Command::Validate { check_connectivity }) => validate(&cli, check_connectivity),
        Some(Command::Graph { format }) => draw(&cli, format),
        Some(Command::PrintConfig { format }) => print_config(&cli, format),
        Some(Command::Send(args)) => {
            if cli.config.is_some() {
                eprintln!("error: --config is for running or validating a collector, not for send");
                return ExitCode::from(2);
            }
            send::run(*args)
        }
        Some(Command::Keygen(args)) => {
            if cli.config.is_some() {
                eprintln!(
                    "error: --config is for running or validating a collector, not for keygen"
                );
                return ExitCode::from(2);
            }
            integrity::keygen(args)
        }
        Some(Command::Verify(args)) => {
            if cli.config.is_some() {
                eprintln!(
                    "error: --config is for running or validating a collector, not for verify"
                );
                return ExitCode::from(2);
            }
            integrity::verify(args)
        }
        None => serve(&cli),
    }
}

/// `auditcol graph`: the config is checked as `validate` does, then drawn.
fn draw(cli: &Cli, format: graph::GraphFormat) -> ExitCode {
    let drawn = auditcol::read_config(cli.config.as_deref()).and_then(|text| {
        auditcol::build_with(&text, &cli.set)?;
        let config = auditcol::parse(&text, &cli.set)?;
        Ok(graph::render(&config, format))
    });
    match drawn {
        Ok(picture) => {
            print!("{picture}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The output of `print-config`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PrintFormat {
    Yaml,
    Json,
}

fn print_config(cli: &Cli, format: PrintFormat) -> ExitCode {
    let result = auditcol::read_config(cli.config.as_deref())
        .and_then(|text| auditcol::build_with(&text, &cli.set));
    let config = match result {
        Ok(service) => service.effective_config(),
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let text = match format {
        PrintFormat::Yaml => serde_saphyr::to_string(&config).map_err(|e| e.to_string()),
        PrintFormat::Json => serde_json::to_string_pretty(&config)
            .map(|t| t + "\n")
            .map_err(|e| e.to_string()),
    };
    match text {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot print the config: {e}");
            ExitCode::FAILURE
        }
    }
}

fn validate(cli: &Cli, check_connectivity: bool) -> ExitCode {
    let result = auditcol::read_config(cli.config.as_deref())
        .and_then(|text| auditcol::build_with(&text, &cli.set));
    match result {
        Ok(service) => {
            for warning in service.warnings() {
                eprintln!("warning: {warning}");
            }
            if check_connectivity {
                let reachable = tokio::runtime::Runtime::new()
                    .map(|rt| rt.block_on(auditcol::check_connectivity(&service)));
                match reachable {
                    Ok(true) => {}
                    Ok(false) => return ExitCode::FAILURE,
                    Err(e) => {
                        eprintln!("error: cannot start the async runtime: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            println!("OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(cli: &Cli) -> ExitCode {
    let text = match auditcol::read_config(cli.config.as_deref()) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&auditcol::logs_settings(&text, &cli.set));
    raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(auditcol::run(&text, &cli.set, cli.shutdown_timeout.0)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Said once, in the log (stderr), in the configured encoding.
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process. With THP on
/// (`always`, the default of many distributions) the kernel backs
/// mimalloc's aligned regions with 2 MiB pages, so touching a few bytes
/// commits 2 MiB: the benchmark's peak RSS was 58–79 MB with them and 34–43
/// MB without, for the same CPU per record (BENCHMARKS.md).
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integers only and sets one flag of
    // this process; it cannot touch memory. Failure leaves THP as it was.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Every connection and file takes a file handle; the usual soft limit
/// (1024) would let about a thousand idle connections lock out everyone
/// else. Raise the soft limit to the hard one, and say what it is: listener
/// connection limits are sized against it.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        let before = Resource::NOFILE.get().map(|(soft, _)| soft).unwrap_or(0);
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => {
                tracing::info!(open_files = limit, previous = before, "open-file limit")
            }
            Err(e) => tracing::warn!(
                open_files = before,
                error = %e,
                "cannot raise the open-file limit"
            ),
        }
    }
}

/// Logs go to stderr (stdout belongs to exporters writing events), as
/// `service.telemetry.logs` says: `level` (unless `RUST_LOG` is set, which
/// may also set levels per module) and `encoding` (`console` or `json`).
fn init_logging(logs: &LogsConfig) {
    use std::io::IsTerminal;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| tracing_subscriber::EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(logs.level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match logs.encoding {
        LogEncoding::Console => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogEncoding::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
