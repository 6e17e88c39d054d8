//! The graph of components built from a [`CollectorConfig`].
//!
//! Receivers and exporters are shared: one instance per id, however many
//! pipelines use it. Processors belong to one pipeline: a processor id used
//! in two pipelines is two instances. A receiver in several pipelines fans
//! out to each pipeline's head; a pipeline fans out to its exporters.
//!
//! Start order is exporters, processors, receivers, so nothing receives data
//! before its downstream is ready. At shutdown receivers stop accepting while
//! processors flush, then exporters drain (see [`Service::shutdown`]).
//!
//! The service keeps the [`StatusBoard`] (each component's state as it
//! starts and stops, for the health check) and the [`Telemetry`] every
//! component registers its metrics with; it counts the items in and out of
//! every processor itself, as the Collector's processor helper does.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::component::{
    BuildContext, Component, ComponentId, ComponentKind, Connectivity, Exporter, Extension, Host,
    Leftover, Processor, Receiver, Registry, StartError,
};
use crate::config::{CollectorConfig, ConfigError, LoadError};
use crate::consumer::{FanOut, LogsConsumer, SharedConsumer};
use crate::memorylimiter::Admission;
use crate::status::{ComponentState, ServiceState, StatusBoard};
use crate::telemetry::{Counter, MetricsLevel, Telemetry};
use crate::{LogBatch, PipelineError};

/// A running (or ready to run) set of pipelines.
pub struct Service {
    extensions: Vec<(ComponentId, Arc<dyn Extension>)>,
    receivers: Vec<(ComponentId, Arc<dyn Receiver>)>,
    processors: Vec<(String, ComponentId, Arc<dyn Processor>)>,
    exporters: Vec<(ComponentId, Arc<dyn Exporter>)>,
    warnings: Vec<String>,
    telemetry: Telemetry,
    /// Where metrics are served; `None` with `level: none`.
    metrics_address: Option<SocketAddr>,
    status: StatusBoard,
    /// The task writing due summaries of the rate-limited logs.
    summaries: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
    /// Every section as the factories understood it, defaults filled in.
    effective: serde_json::Value,
}

/// The key of a component on the status board: `receivers::otlp`, and for
/// a processor (one instance per pipeline) `processors::batch (logs/a)`.
fn status_key(section: &str, id: &ComponentId, pipeline: Option<&str>) -> String {
    match pipeline {
        Some(pipeline) => format!("{section}::{id} ({pipeline})"),
        None => format!("{section}::{id}"),
    }
}

/// A processor as the pipeline sees it: the records it is handed are
/// counted (`otelcol_processor_incoming_items`); what it hands on is
/// counted by the [`Outgoing`] it was built with.
struct CountedProcessor {
    inner: Arc<dyn Processor>,
    incoming: Counter,
}

#[async_trait]
impl Component for CountedProcessor {
    async fn start(&self) -> Result<(), StartError> {
        self.inner.start().await
    }

    async fn shutdown(&self, deadline: Instant) {
        self.inner.shutdown(deadline).await
    }

    async fn check_connectivity(&self) -> Connectivity {
        self.inner.check_connectivity().await
    }

    fn leftover(&self) -> Leftover {
        self.inner.leftover()
    }
}

#[async_trait]
impl LogsConsumer for CountedProcessor {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.incoming.inc_by(batch.len() as u64);
        self.inner.consume(batch).await
    }
}

impl Processor for CountedProcessor {}

/// What a processor hands on: counted (`otelcol_processor_outgoing_items`).
struct Outgoing {
    next: SharedConsumer,
    outgoing: Counter,
}

#[async_trait]
impl LogsConsumer for Outgoing {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.outgoing.inc_by(batch.len() as u64);
        self.next.consume(batch).await
    }
}

/// A component failed to start.
#[derive(Debug, thiserror::Error)]
#[error("{section}::{id}: failed to start: {message}")]
pub struct StartFailure {
    pub section: &'static str,
    pub id: String,
    pub message: String,
}

fn parse_ids(
    section: &BTreeMap<String, serde_json::Value>,
    kind: ComponentKind,
) -> Result<BTreeMap<String, ComponentId>, LoadError> {
    section
        .keys()
        .map(|key| {
            ComponentId::parse(key)
                .map(|id| (key.clone(), id))
                .map_err(|message| LoadError::Structure {
                    path: format!("{}.{key}", kind.section()),
                    message,
                })
        })
        .collect()
}

fn component_error(kind: ComponentKind, id: &ComponentId, error: ConfigError) -> LoadError {
    LoadError::Component {
        section: kind.section(),
        id: id.to_string(),
        error,
    }
}

fn unknown_type(kind: ComponentKind, id: &ComponentId, registry: &Registry) -> LoadError {
    component_error(
        kind,
        id,
        ConfigError::at(
            "",
            format!(
                "unknown {} type `{}`; known types: {}",
                kind.noun(),
                id.type_name(),
                registry.types(kind).join(", ")
            ),
        ),
    )
}

/// The settings of each component as its factory parsed them, by section.
#[derive(Default)]
struct Effective(serde_json::Map<String, serde_json::Value>);

impl Effective {
    /// Keeps what the factory recorded in `ctx`, or else the raw settings.
    fn record(&mut self, section: &str, key: &str, ctx: &BuildContext, raw: &serde_json::Value) {
        let value = ctx.effective().cloned().unwrap_or_else(|| raw.clone());
        if let serde_json::Value::Object(components) = self
            .0
            .entry(section)
            .or_insert_with(|| serde_json::Value::Object(Default::default()))
        {
            components.entry(key).or_insert(value);
        }
    }
}

impl Service {
    /// Builds every component and wires the pipelines. Nothing is started:
    /// this is also how `auditcol validate` checks a config.
    pub fn build(config: &CollectorConfig, registry: &Registry) -> Result<Service, LoadError> {
        let receiver_ids = parse_ids(&config.receivers, ComponentKind::Receiver)?;
        let processor_ids = parse_ids(&config.processors, ComponentKind::Processor)?;
        let exporter_ids = parse_ids(&config.exporters, ComponentKind::Exporter)?;
        let extension_ids = parse_ids(&config.extensions, ComponentKind::Extension)?;
        let mut warnings = Vec::new();

        let metrics = &config.service.telemetry.metrics;
        let metrics_address = match metrics.level {
            MetricsLevel::None => None,
            _ => Some(
                crate::receiverhelper::parse_endpoint(&metrics.address).map_err(|message| {
                    LoadError::Structure {
                        path: "service.telemetry.metrics.address".into(),
                        message,
                    }
                })?,
            ),
        };
        let telemetry = Telemetry::new(metrics.level);
        let status = StatusBoard::default();

        let mut listed = BTreeSet::new();
        for key in &config.service.extensions {
            if !extension_ids.contains_key(key) {
                return Err(LoadError::Structure {
                    path: "service.extensions".into(),
                    message: format!(
                        "references `{key}`, which is not defined in the `extensions` section"
                    ),
                });
            }
            if !listed.insert(key) {
                return Err(LoadError::Structure {
                    path: "service.extensions".into(),
                    message: format!("lists `{key}` twice"),
                });
            }
        }
        if config.service.pipelines.is_empty() {
            return Err(LoadError::Structure {
                path: "service.pipelines".into(),
                message: "at least one pipeline is required".into(),
            });
        }

        // Check every pipeline before building anything, so errors about wiring come first.
        for (name, pipeline) in &config.service.pipelines {
            let perr = |message: String| LoadError::Pipeline {
                pipeline: name.clone(),
                message,
            };
            let signal = name.split_once('/').map_or(name.as_str(), |(s, _)| s);
            if signal != "logs" || name.ends_with('/') {
                return Err(perr(format!(
                    "invalid pipeline id `{name}`: auditcol carries logs only, use `logs` or `logs/<name>`"
                )));
            }
            for (list, ids, role) in [
                (&pipeline.receivers, &receiver_ids, "receivers"),
                (&pipeline.processors, &processor_ids, "processors"),
                (&pipeline.exporters, &exporter_ids, "exporters"),
            ] {
                if list.is_empty() && role != "processors" {
                    return Err(perr(format!("`{role}` must list at least one component")));
                }
                let mut seen = BTreeSet::new();
                for id in list {
                    if !ids.contains_key(id) {
                        return Err(perr(format!(
                            "{role} references `{id}`, which is not defined in the `{role}` section"
                        )));
                    }
                    if !seen.insert(id) {
                        return Err(perr(format!("{role} lists `{id}` twice")));
                    }
                }
            }
        }

        let used = |role: fn(&crate::config::PipelineConfig) -> &Vec<String>| -> BTreeSet<&String> {
            config.service.pipelines.values().flat_map(role).collect()
        };
        let used_receivers = used(|p| &p.receivers);
        let used_processors = used(|p| &p.processors);
        let used_exporters = used(|p| &p.exporters);
        let no_op: SharedConsumer = Arc::new(FanOut::new(Vec::new()));
        let mut effective = Effective::default();

        // Extensions first: the other components may use them. Only those
        // listed in `service.extensions` run; the others are checked too.
        let mut extensions = Vec::new();
        let mut enabled = BTreeMap::new();
        let mut disabled = Vec::new();
        for (key, id) in &extension_ids {
            let factory = registry
                .extensions
                .get(id.type_name())
                .ok_or_else(|| unknown_type(ComponentKind::Extension, id, registry))?;
            // Extensions cannot use each other; they see the status board.
            let ctx = BuildContext::new(id.clone())
                .with_host(Host::default().with_status(status.clone()))
                .with_telemetry(telemetry.clone());
            let extension = factory
                .build(&ctx, &config.extensions[key])
                .map_err(|e| component_error(ComponentKind::Extension, id, e))?;
            effective.record("extensions", key, &ctx, &config.extensions[key]);
            if listed.contains(key) {
                enabled.insert(id.clone(), extension);
            } else {
                disabled.push(id.clone());
                warnings.push(format!(
                    "extensions::{id} is defined but not listed in service.extensions"
                ));
            }
        }
        for key in &config.service.extensions {
            let id = &extension_ids[key];
            extensions.push((id.clone(), enabled[id].clone()));
        }
        let host = Host::new(enabled, disabled).with_status(status.clone());
        // A component used in no pipeline is built (to check its config)
        // but never runs: it registers no series.
        let context = |id: &ComponentId, used: bool| {
            BuildContext::new(id.clone())
                .with_host(host.clone())
                .with_telemetry(if used {
                    telemetry.clone()
                } else {
                    Telemetry::disabled()
                })
        };

        // Exporters: one instance per id.
        let mut exporters = Vec::new();
        let mut exporter_by_key = BTreeMap::new();
        for (key, id) in &exporter_ids {
            let factory = registry
                .exporters
                .get(id.type_name())
                .ok_or_else(|| unknown_type(ComponentKind::Exporter, id, registry))?;
            let ctx = context(id, used_exporters.contains(key));
            let exporter = factory
                .build(&ctx, &config.exporters[key])
                .map_err(|e| component_error(ComponentKind::Exporter, id, e))?;
            effective.record("exporters", key, &ctx, &config.exporters[key]);
            if used_exporters.contains(key) {
                exporter_by_key.insert(key.clone(), exporter.clone());
                exporters.push((id.clone(), exporter));
            } else {
                warnings.push(format!(
                    "exporters::{id} is defined but used in no pipeline"
                ));
            }
        }

        let effective = std::cell::RefCell::new(effective);
        let build_processor = |key: &String, pipeline: Option<&String>, next: SharedConsumer| {
            let id = &processor_ids[key];
            let factory = registry
                .processors
                .get(id.type_name())
                .ok_or_else(|| unknown_type(ComponentKind::Processor, id, registry))?;
            let mut ctx = context(id, pipeline.is_some());
            ctx.pipeline = pipeline.cloned();
            let (incoming, outgoing) = ctx.telemetry.processor_items(id);
            let next: SharedConsumer = Arc::new(Outgoing { next, outgoing });
            let built = factory
                .build(&ctx, &config.processors[key], next)
                .map(|processor| {
                    let counted: Arc<dyn Processor> = Arc::new(CountedProcessor {
                        inner: processor,
                        incoming,
                    });
                    (id.clone(), counted)
                })
                .map_err(|e| component_error(ComponentKind::Processor, id, e))?;
            effective
                .borrow_mut()
                .record("processors", key, &ctx, &config.processors[key]);
            Ok::<_, LoadError>(built)
        };

        // Processors: one instance per pipeline, built last to first.
        let mut processors = Vec::new();
        let mut heads: BTreeMap<&String, SharedConsumer> = BTreeMap::new();
        for (name, pipeline) in &config.service.pipelines {
            let mut next = FanOut::new(
                pipeline
                    .exporters
                    .iter()
                    .map(|key| exporter_by_key[key].clone() as SharedConsumer)
                    .collect(),
            )
            .into_consumer();
            let mut built = Vec::new();
            for key in pipeline.processors.iter().rev() {
                let (id, processor) = build_processor(key, Some(name), next)?;
                next = processor.clone();
                built.push((name.clone(), id, processor));
            }
            built.reverse();
            processors.extend(built);
            heads.insert(name, next);
        }
        for (key, id) in &processor_ids {
            if !used_processors.contains(key) {
                build_processor(key, None, no_op.clone())?;
                warnings.push(format!(
                    "processors::{id} is defined but used in no pipeline"
                ));
            }
        }

        // Receivers: one instance per id, fanning out to every pipeline that lists it.
        let mut receivers = Vec::new();
        for (key, id) in &receiver_ids {
            let factory = registry
                .receivers
                .get(id.type_name())
                .ok_or_else(|| unknown_type(ComponentKind::Receiver, id, registry))?;
            // The memory limiters of the pipelines it feeds: it asks them
            // before it reads a request (their processors are built by now).
            let limiters = host.memory_limiters_of(
                config
                    .service
                    .pipelines
                    .values()
                    .filter(|p| p.receivers.contains(key))
                    .flat_map(|p| &p.processors)
                    .map(|processor| &processor_ids[processor]),
            );
            let mut ctx = context(id, used_receivers.contains(key));
            ctx.host = ctx.host.with_admission(Admission::new(limiters));
            let next = if used_receivers.contains(key) {
                FanOut::new(
                    config
                        .service
                        .pipelines
                        .iter()
                        .filter(|(_, p)| p.receivers.contains(key))
                        .map(|(name, _)| heads[name].clone())
                        .collect(),
                )
                .into_consumer()
            } else {
                no_op.clone()
            };
            let receiver = factory
                .build(&ctx, &config.receivers[key], next)
                .map_err(|e| component_error(ComponentKind::Receiver, id, e))?;
            effective
                .borrow_mut()
                .record("receivers", key, &ctx, &config.receivers[key]);
            if used_receivers.contains(key) {
                receivers.push((id.clone(), receiver));
            } else {
                warnings.push(format!(
                    "receivers::{id} is defined but used in no pipeline"
                ));
            }
        }

        // Every component is on the board from the start, in start order.
        for (id, _) in &extensions {
            status.set_component(&status_key("extensions", id, None), ComponentState::Pending);
        }
        for (id, _) in &exporters {
            status.set_component(&status_key("exporters", id, None), ComponentState::Pending);
        }
        for (pipeline, id, _) in processors.iter().rev() {
            status.set_component(
                &status_key("processors", id, Some(pipeline)),
                ComponentState::Pending,
            );
        }
        for (id, _) in &receivers {
            status.set_component(&status_key("receivers", id, None), ComponentState::Pending);
        }

        let mut effective = effective.into_inner().0;
        effective.insert(
            "service".into(),
            serde_json::to_value(&config.service).unwrap_or_default(),
        );
        Ok(Service {
            effective: serde_json::Value::Object(effective),
            extensions,
            receivers,
            processors,
            exporters,
            warnings,
            telemetry,
            metrics_address,
            status,
            summaries: Mutex::new(None),
        })
    }

    /// Warnings found while building (components used in no pipeline).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The registry every component registered its metrics with.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Where `service.telemetry.metrics` says to serve metrics; `None` with
    /// `level: none`.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// The states of the service and of its components.
    pub fn status(&self) -> &StatusBoard {
        &self.status
    }

    /// Starts writing due summaries of drops and refusals every second.
    fn start_summaries(&self) {
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.telemetry.clone().run_log_summaries(stop.clone()));
        let previous = self
            .summaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace((stop, task));
        if let Some((stop, _)) = previous {
            stop.cancel();
        }
    }

    /// Stops the summaries, writing what is pending.
    async fn stop_summaries(&self) {
        let running = self
            .summaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((stop, task)) = running {
            stop.cancel();
            let _ = task.await;
        }
    }

    /// Shuts `component` down, telling the board.
    async fn stop_component(&self, key: &str, component: &dyn Component, deadline: Instant) {
        self.status.set_component(key, ComponentState::Stopping);
        component.shutdown(deadline).await;
        self.status.set_component(key, ComponentState::Stopped);
    }

    /// The config as the components understood it: every section, each
    /// component's settings with their defaults filled in, secrets masked
    /// (see [`crate::config::mask_secrets`]). For `auditcol print-config`.
    pub fn effective_config(&self) -> serde_json::Value {
        let mut config = self.effective.clone();
        crate::config::mask_secrets(&mut config);
        config
    }

    /// Runs every component's connectivity check (exporters, processors,
    /// receivers), concurrently, without starting anything. Returns the
    /// components that have something to check, as `section::id` with the
    /// outcome.
    pub async fn check_connectivity(&self) -> Vec<(String, Connectivity)> {
        let components =
            self.extensions
                .iter()
                .map(|(id, c)| (format!("extensions::{id}"), c.clone() as Arc<dyn Component>))
                .chain(
                    self.exporters.iter().map(|(id, c)| {
                        (format!("exporters::{id}"), c.clone() as Arc<dyn Component>)
                    }),
                )
                .chain(self.processors.iter().map(|(_, id, c)| {
                    (format!("processors::{id}"), c.clone() as Arc<dyn Component>)
                }))
                .chain(
                    self.receivers.iter().map(|(id, c)| {
                        (format!("receivers::{id}"), c.clone() as Arc<dyn Component>)
                    }),
                );
        let checks = components
            .map(|(name, component)| async move { (name, component.check_connectivity().await) });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .filter(|(_, outcome)| *outcome != Connectivity::NotApplicable)
            .collect()
    }

    /// Binds every receiver's listeners, then starts extensions, exporters,
    /// processors (last stage first) and receivers. If one fails, those
    /// already started are shut down again.
    pub async fn start(&self) -> Result<(), StartFailure> {
        // Every listener first: a port in use must fail the start before
        // any exporter creates a file or a directory.
        for (id, receiver) in &self.receivers {
            if let Err(e) = receiver.bind().await {
                return Err(StartFailure {
                    section: "receivers",
                    id: id.to_string(),
                    message: e.0,
                });
            }
        }
        self.status.set_service(ServiceState::Starting);
        self.start_summaries();
        let mut started: Vec<(String, Arc<dyn Component>)> = Vec::new();
        let order = self
            .extensions
            .iter()
            .map(|(id, c)| ("extensions", id, None, c.clone() as Arc<dyn Component>))
            .chain(
                self.exporters
                    .iter()
                    .map(|(id, c)| ("exporters", id, None, c.clone() as Arc<dyn Component>)),
            )
            .chain(self.processors.iter().rev().map(|(pipeline, id, c)| {
                (
                    "processors",
                    id,
                    Some(pipeline.as_str()),
                    c.clone() as Arc<dyn Component>,
                )
            }))
            .chain(
                self.receivers
                    .iter()
                    .map(|(id, c)| ("receivers", id, None, c.clone() as Arc<dyn Component>)),
            );
        for (section, id, pipeline, component) in order {
            let key = status_key(section, id, pipeline);
            self.status.set_component(&key, ComponentState::Starting);
            if let Err(e) = component.start().await {
                self.status
                    .set_component(&key, ComponentState::Failed(e.0.clone()));
                self.status.set_service(ServiceState::Failed);
                let deadline = Instant::now() + std::time::Duration::from_secs(5);
                for (key, c) in started.iter().rev() {
                    self.stop_component(key, c.as_ref(), deadline).await;
                }
                self.stop_summaries().await;
                return Err(StartFailure {
                    section,
                    id: id.to_string(),
                    message: e.0,
                });
            }
            self.status.set_component(&key, ComponentState::Running);
            started.push((key, component));
        }
        self.status.set_service(ServiceState::Running);
        Ok(())
    }

    /// Stops receivers and flushes processors, then drains exporters, then
    /// stops extensions, all within `deadline`.
    ///
    /// Receivers stop accepting *while* processors flush, not before: a
    /// request in flight may be held by a batch processor until its batch is
    /// exported, so waiting for receivers to drain first would wait for a
    /// flush that only shutdown triggers. A request that reaches a processor
    /// after it stopped is refused as retryable, never acknowledged.
    ///
    /// Returns what was left undone, per component (`exporters::file`);
    /// empty when everything drained.
    pub async fn shutdown(&self, deadline: Instant) -> Vec<(String, crate::component::Leftover)> {
        self.status.set_service(ServiceState::Stopping);
        let receivers = futures::future::join_all(self.receivers.iter().map(|(id, r)| {
            let key = status_key("receivers", id, None);
            async move { self.stop_component(&key, r.as_ref(), deadline).await }
        }));
        let processors = async {
            for (pipeline, id, processor) in &self.processors {
                let key = status_key("processors", id, Some(pipeline));
                self.stop_component(&key, processor.as_ref(), deadline)
                    .await;
            }
        };
        futures::future::join(receivers, processors).await;
        futures::future::join_all(self.exporters.iter().map(|(id, e)| {
            let key = status_key("exporters", id, None);
            async move { self.stop_component(&key, e.as_ref(), deadline).await }
        }))
        .await;
        for (id, extension) in self.extensions.iter().rev() {
            let key = status_key("extensions", id, None);
            self.stop_component(&key, extension.as_ref(), deadline)
                .await;
        }
        self.stop_summaries().await;
        self.status.set_service(ServiceState::Stopped);
        let components = self
            .receivers
            .iter()
            .map(|(id, c)| (format!("receivers::{id}"), c.leftover()))
            .chain(
                self.processors
                    .iter()
                    .map(|(_, id, c)| (format!("processors::{id}"), c.leftover())),
            )
            .chain(
                self.exporters
                    .iter()
                    .map(|(id, c)| (format!("exporters::{id}"), c.leftover())),
            );
        components.filter(|(_, left)| !left.is_empty()).collect()
    }
}

#[cfg(test)]
mod tests;
