//! The `auditcol` binary's library half: the component registry and the
//! commands. Only this crate knows every component; adding one is a new
//! crate plus one line in [`registry`].

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use auditcol_core::config::{CollectorConfig, ConfigOverride};
use auditcol_core::pipeline::Service;
use auditcol_core::telemetry::server::MetricsServer;
use auditcol_core::{Connectivity, Registry};

/// The config used when `auditcol` runs without `--config`: OTLP gRPC and
/// HTTP in, a `*:*` filter, console lines on stdout. Same text as
/// `collector-config/default.yaml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../collector-config/default.yaml");

/// Every component type auditcol knows.
pub fn registry() -> Registry {
    Registry::new()
        .receiver(auditcol_receiver_otlp::OtlpReceiverFactory)
        .receiver(auditcol_receiver_webhook::WebhookReceiverFactory)
        .receiver(auditcol_receiver_kafka::KafkaReceiverFactory)
        .processor(auditcol_processor_filter::FilterProcessorFactory)
        .processor(auditcol_processor_batch::BatchProcessorFactory)
        .processor(auditcol_processor_redaction::RedactionProcessorFactory)
        .processor(auditcol_processor_memorylimiter::MemoryLimiterProcessorFactory)
        .exporter(auditcol_exporter_file::FileExporterFactory)
        .exporter(auditcol_exporter_otlp::OtlpExporterFactory)
        .exporter(auditcol_exporter_otlphttp::OtlpHttpExporterFactory)
        .exporter(auditcol_exporter_webhook::WebhookExporterFactory)
        .exporter(auditcol_exporter_debug::DebugExporterFactory)
        .exporter(auditcol_exporter_kafka::KafkaExporterFactory)
        .extension(auditcol_extension_healthcheck::HealthCheckExtensionFactory)
        .extension(auditcol_extension_auth::BearerTokenAuthFactory)
        .extension(auditcol_extension_auth::BasicAuthFactory)
}

/// Parses `text` and builds (without starting) every pipeline in it.
/// Returns the service and its warnings (components used in no pipeline).
pub fn build(text: &str) -> anyhow::Result<Service> {
    build_with(text, &[])
}

/// [`build`], with `--set` overrides applied over the file.
pub fn build_with(text: &str, overrides: &[ConfigOverride]) -> anyhow::Result<Service> {
    let config = parse(text, overrides)?;
    Ok(Service::build(&config, &registry())?)
}

/// Parses `text` with `${env:…}` from the environment and `overrides` applied.
pub fn parse(text: &str, overrides: &[ConfigOverride]) -> anyhow::Result<CollectorConfig> {
    Ok(CollectorConfig::from_yaml_with_overrides(
        text,
        &|name| std::env::var(name).ok(),
        overrides,
    )?)
}

/// `service.telemetry.logs` of config `text` (with `overrides`), to set up
/// logging before the config is loaded for real (which logs, e.g. about
/// unset variables). A config that does not parse gets the defaults;
/// loading it reports why.
pub fn logs_settings(
    text: &str,
    overrides: &[ConfigOverride],
) -> auditcol_core::config::LogsConfig {
    parse(text, overrides)
        .map(|config| config.service.telemetry.logs)
        .unwrap_or_default()
}

/// Reads a config file, or the embedded default when `path` is `None`.
pub fn read_config(path: Option<&Path>) -> anyhow::Result<String> {
    match path {
        None => Ok(DEFAULT_CONFIG.to_owned()),
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display())),
    }
}

/// `auditcol validate --check-connectivity`: runs every component's check
/// (brokers reachable, topics exist) and prints one line per component that
/// has something to check. True when all of them are reachable.
pub async fn check_connectivity(service: &Service) -> bool {
    let mut ok = true;
    for (component, outcome) in service.check_connectivity().await {
        match outcome {
            Connectivity::NotApplicable => {}
            Connectivity::Reachable(what) => println!("{component}: reachable: {what}"),
            Connectivity::Unreachable(why) => {
                ok = false;
                println!("{component}: FAILED: {why}");
            }
        }
    }
    ok
}

/// Runs the collector until SIGINT or SIGTERM, then shuts down within
/// `shutdown_timeout`. The metrics endpoint is bound before anything
/// starts and closed after everything stopped.
pub async fn run(
    text: &str,
    overrides: &[ConfigOverride],
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    // A file that reaches the file-size limit (RLIMIT_FSIZE) must be a
    // failed write, retried and reported, not the end of the process:
    // SIGXFSZ is caught (and ignored) so the write returns EFBIG instead.
    #[cfg(unix)]
    let _file_size_limit =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
            .context("cannot handle SIGXFSZ")?;
    let service = build_with(text, overrides)?;
    for warning in service.warnings() {
        tracing::warn!("{warning}");
    }
    let metrics = match service.metrics_address() {
        Some(addr) => Some(
            MetricsServer::start(addr, service.telemetry().clone())
                .await
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    if let Err(e) = service.start().await {
        if let Some(metrics) = metrics {
            metrics.stop().await;
        }
        return Err(e.into());
    }
    tracing::info!("auditcol is running");
    wait_for_signal().await?;
    tracing::info!(timeout = ?shutdown_timeout, "shutting down: stopping receivers, flushing processors, draining exporters");
    let left = service
        .shutdown(tokio::time::Instant::now() + shutdown_timeout)
        .await;
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    if left.is_empty() {
        tracing::info!("auditcol stopped");
        return Ok(());
    }
    for (component, leftover) in &left {
        tracing::warn!(component = %component, "{leftover}");
    }
    let lost: u64 = left.iter().map(|(_, l)| l.lost_records).sum();
    let kept: u64 = left.iter().map(|(_, l)| l.kept_batches).sum();
    let refused: u64 = left.iter().map(|(_, l)| l.refused_records).sum();
    anyhow::bail!(
        "stopped before every exporter drained (--shutdown-timeout {}): \
         {kept} batches kept in persistent queues, {refused} records answered \
         as failed to their senders, {lost} records lost",
        auditcol_core::config::ConfigDuration(shutdown_timeout)
    )
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_uses_every_component_it_defines() {
        let service = build(DEFAULT_CONFIG).unwrap();
        assert!(service.warnings().is_empty(), "{:?}", service.warnings());
    }
}
