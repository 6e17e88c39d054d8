//! Component traits, factories and the registry.
//!
//! A component is built from its config by a factory without side effects
//! (so `auditcol validate` can build the whole graph), acquires its
//! resources (sockets, files) in [`Component::start`] and lets go of them in
//! [`Component::shutdown`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{ClientAuthenticator, ServerAuthenticator};
use crate::config::{ConfigError, Validate, parse_component_config};
use crate::consumer::{LogsConsumer, SharedConsumer};
use crate::memorylimiter::{Admission, MemoryLimiter};
use crate::status::StatusBoard;
use crate::telemetry::Telemetry;

/// The section a component belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    Receiver,
    Processor,
    Exporter,
    Extension,
}

impl ComponentKind {
    /// The config section: `receivers`, `processors`, `exporters` or `extensions`.
    pub fn section(self) -> &'static str {
        match self {
            Self::Receiver => "receivers",
            Self::Processor => "processors",
            Self::Exporter => "exporters",
            Self::Extension => "extensions",
        }
    }

    /// The singular noun, for messages: `receiver`, `processor`, ...
    pub fn noun(self) -> &'static str {
        match self {
            Self::Receiver => "receiver",
            Self::Processor => "processor",
            Self::Exporter => "exporter",
            Self::Extension => "extension",
        }
    }
}

/// A component id, `type` or `type/name`, as in the Collector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    type_name: String,
    name: Option<String>,
}

impl ComponentId {
    /// Parses `type` or `type/name`. The type is `[a-z][a-z0-9_]*`; the
    /// name is any non-empty text without whitespace.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (type_name, name) = match text.split_once('/') {
            Some((t, n)) => (t, Some(n)),
            None => (text, None),
        };
        let mut chars = type_name.chars();
        let type_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !type_ok {
            return Err(format!(
                "invalid component id `{text}`: the type must be lower-case letters, digits and `_`, starting with a letter"
            ));
        }
        if let Some(name) = name
            && (name.is_empty() || name.chars().any(char::is_whitespace))
        {
            return Err(format!(
                "invalid component id `{text}`: the name after `/` must be non-empty and without spaces"
            ));
        }
        Ok(Self {
            type_name: type_name.to_owned(),
            name: name.map(str::to_owned),
        })
    }

    /// An id from its parts.
    pub fn new(type_name: &str, name: Option<&str>) -> Self {
        Self {
            type_name: type_name.to_owned(),
            name: name.map(str::to_owned),
        }
    }

    /// The component type (`otlp`, `file`, ...).
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The part after `/`, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{name}", self.type_name),
            None => f.write_str(&self.type_name),
        }
    }
}

/// What a factory knows about the component it builds.
#[derive(Clone)]
pub struct BuildContext {
    /// The component's id.
    pub id: ComponentId,
    /// For processors (one instance per pipeline): the pipeline's id.
    pub pipeline: Option<String>,
    /// The rest of the collector a component may use: the enabled
    /// extensions, the status board.
    pub host: Host,
    /// Where the component registers its metrics and rate-limited logs, at
    /// build time (see [`crate::telemetry`]).
    pub telemetry: Telemetry,
    /// The settings the factory parsed, defaults filled in (for
    /// `auditcol print-config`); see [`BuildContext::parse_config`].
    effective: Arc<std::sync::OnceLock<serde_json::Value>>,
}

impl BuildContext {
    /// The context of a component outside any pipeline, with no extensions
    /// and telemetry that exposes nothing.
    pub fn new(id: ComponentId) -> Self {
        Self {
            id,
            pipeline: None,
            host: Host::default(),
            telemetry: Telemetry::disabled(),
            effective: Arc::default(),
        }
    }

    /// Parses and validates the component's raw settings, as
    /// [`parse_component_config`] does, and keeps the result with every
    /// default filled in, so `auditcol print-config` can show it.
    pub fn parse_config<T: DeserializeOwned + Validate + Serialize>(
        &self,
        raw: &serde_json::Value,
    ) -> Result<T, ConfigError> {
        let config: T = parse_component_config(raw)?;
        if let Ok(value) = serde_json::to_value(&config) {
            self.record_effective(value);
        }
        Ok(config)
    }

    /// Keeps `value` as the component's effective settings (for factories
    /// that parse their settings in parts).
    pub fn record_effective(&self, value: serde_json::Value) {
        let _ = self.effective.set(value);
    }

    /// What [`BuildContext::parse_config`] kept, if the factory used it.
    pub fn effective(&self) -> Option<&serde_json::Value> {
        self.effective.get()
    }

    /// The same, for a processor instance of `pipeline`.
    pub fn in_pipeline(mut self, pipeline: &str) -> Self {
        self.pipeline = Some(pipeline.to_owned());
        self
    }

    /// The same, with `host` (the enabled extensions).
    pub fn with_host(mut self, host: Host) -> Self {
        self.host = host;
        self
    }

    /// The same, with `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }
}

impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("id", &self.id)
            .field("pipeline", &self.pipeline)
            .field("extensions", &self.host.enabled.keys().collect::<Vec<_>>())
            .field("telemetry", &self.telemetry)
            .finish()
    }
}

/// The extensions a component can use, as the Collector's host offers them:
/// those listed in `service.extensions`, by id; and the status board of the
/// service (what the health check reports).
#[derive(Clone, Default)]
pub struct Host {
    enabled: Arc<BTreeMap<ComponentId, Arc<dyn Extension>>>,
    /// Defined in `extensions` but not listed in `service.extensions`, so a
    /// reference to one can say what to do.
    disabled: Arc<Vec<ComponentId>>,
    status: StatusBoard,
    /// The service's memory limiters by processor id: the instances of one
    /// id in several pipelines share one (as in the Collector).
    memory_limiters: Arc<Mutex<BTreeMap<ComponentId, MemoryLimiter>>>,
    /// For a receiver: the limiters of the pipelines it feeds.
    admission: Admission,
}

impl Host {
    /// A host with these enabled extensions, and these defined but not enabled.
    pub fn new(
        enabled: BTreeMap<ComponentId, Arc<dyn Extension>>,
        disabled: Vec<ComponentId>,
    ) -> Self {
        Self {
            enabled: Arc::new(enabled),
            disabled: Arc::new(disabled),
            ..Self::default()
        }
    }

    /// The memory limiter of processor `id`: made by `make` the first time,
    /// the same one for every later instance of `id` in this service.
    pub fn memory_limiter(
        &self,
        id: &ComponentId,
        make: impl FnOnce() -> MemoryLimiter,
    ) -> MemoryLimiter {
        self.memory_limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.clone())
            .or_insert_with(make)
            .clone()
    }

    /// The memory limiters registered so far under these processor ids.
    pub fn memory_limiters_of<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a ComponentId>,
    ) -> Vec<MemoryLimiter> {
        let limiters = self
            .memory_limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        ids.into_iter()
            .filter_map(|id| limiters.get(id).cloned())
            .collect()
    }

    /// The same host, for a receiver feeding pipelines with these limiters.
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// What a receiver asks before it reads a request: the memory limiters
    /// of the pipelines it feeds (none: everything is admitted).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The same host, reporting to `status`.
    pub fn with_status(mut self, status: StatusBoard) -> Self {
        self.status = status;
        self
    }

    /// The states of the service and of its components, as the service
    /// updates them (start, stop, failures).
    pub fn status(&self) -> &StatusBoard {
        &self.status
    }

    /// The enabled extensions, by id.
    pub fn extensions(&self) -> impl Iterator<Item = (&ComponentId, &Arc<dyn Extension>)> {
        self.enabled.iter()
    }

    /// The enabled extension `id` (as written in the config), or why there
    /// is none: a malformed id, an extension that is not defined, or one
    /// that is defined but not listed in `service.extensions`.
    pub fn extension(&self, id: &str) -> Result<&Arc<dyn Extension>, String> {
        let parsed = ComponentId::parse(id)?;
        if let Some(extension) = self.enabled.get(&parsed) {
            return Ok(extension);
        }
        if self.disabled.contains(&parsed) {
            Err(format!(
                "extension `{id}` is defined but not enabled: list it in `service.extensions`"
            ))
        } else {
            Err(format!(
                "extension `{id}` is not defined in the `extensions` section"
            ))
        }
    }
}

/// Why a component could not start.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// What `auditcol validate --check-connectivity` learned about one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connectivity {
    /// Nothing outside the process to check (a file, a listener).
    NotApplicable,
    /// What was checked, and found in order (`brokers k1:9092 answer; topic audit exists`).
    Reachable(String),
    /// What failed, and what to do.
    Unreachable(String),
}

/// What a component left undone at shutdown (see [`Component::leftover`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftover {
    /// Batches kept in a persistent queue: sent at the next start.
    pub kept_batches: u64,
    /// Where they are kept (the queue's directory).
    pub kept_in: Option<String>,
    /// Records whose senders were answered with an error (they may retry):
    /// not acknowledged, so not lost.
    pub refused_records: u64,
    /// Records acknowledged when queued in memory and never exported.
    pub lost_records: u64,
}

impl Leftover {
    /// True when nothing was left.
    pub fn is_empty(&self) -> bool {
        self.kept_batches == 0 && self.refused_records == 0 && self.lost_records == 0
    }
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.kept_batches > 0 {
            parts.push(format!(
                "{} batches kept in the persistent queue {} (sent at the next start)",
                self.kept_batches,
                self.kept_in.as_deref().unwrap_or("")
            ));
        }
        if self.refused_records > 0 {
            parts.push(format!(
                "{} records not exported and answered as failed to their senders",
                self.refused_records
            ));
        }
        if self.lost_records > 0 {
            parts.push(format!(
                "{} records LOST: acknowledged when queued in memory and never exported",
                self.lost_records
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Lifecycle shared by every component.
#[async_trait]
pub trait Component: Send + Sync + 'static {
    /// Binds the sockets the component listens on, and nothing else. The
    /// service binds every listener before it starts any component, so a
    /// port that is taken fails the start before an exporter has created a
    /// file or a directory. [`Component::start`] serves on what was bound
    /// (and binds itself when `bind` was not called).
    async fn bind(&self) -> Result<(), StartError> {
        Ok(())
    }

    /// Acquires resources (binds sockets, opens files, spawns workers).
    async fn start(&self) -> Result<(), StartError> {
        Ok(())
    }

    /// Stops: a receiver stops accepting and waits for requests in flight,
    /// a processor flushes, an exporter drains its queue. Work left at
    /// `deadline` is abandoned (a persistent queue keeps it for the next start).
    async fn shutdown(&self, deadline: Instant) {
        let _ = deadline;
    }

    /// What the component left undone when it stopped (read after
    /// [`Component::shutdown`]): records kept for the next start, records
    /// handed back to senders as failed, records lost.
    fn leftover(&self) -> Leftover {
        Leftover::default()
    }

    /// Checks, without starting, that what the component needs outside the
    /// process answers: a broker is reachable, a topic exists. Used by
    /// `auditcol validate --check-connectivity`; components that depend on
    /// nothing outside keep the default.
    async fn check_connectivity(&self) -> Connectivity {
        Connectivity::NotApplicable
    }
}

/// Takes data in from the outside and hands it to the pipeline.
pub trait Receiver: Component {}

/// Transforms batches on their way through one pipeline.
pub trait Processor: Component + LogsConsumer {}

/// Sends batches out. Usually an [`crate::exporterhelper::ExporterHelper`].
pub trait Exporter: Component + LogsConsumer {}

/// Runs beside the pipelines and offers capabilities to components
/// (authenticators) or to operators (a health check). Started before any
/// pipeline component and shut down after all of them.
pub trait Extension: Component {
    /// The extension itself, so a component that found it through
    /// [`Host::extension`] can ask for the capability it needs.
    fn as_any(&self) -> &dyn std::any::Any;

    /// The extension as a server authenticator (receivers' `auth`), if it is one.
    fn server_authenticator(&self) -> Option<Arc<dyn ServerAuthenticator>> {
        None
    }

    /// The extension as a client authenticator (exporters' `auth`), if it is one.
    fn client_authenticator(&self) -> Option<Arc<dyn ClientAuthenticator>> {
        None
    }
}

/// Builds extensions of one type.
pub trait ExtensionFactory: Send + Sync {
    /// The type in component ids (`health_check`).
    fn type_name(&self) -> &'static str;
    /// Parses and validates `config`, and builds the extension.
    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Extension>, ConfigError>;
}

/// Builds receivers of one type.
pub trait ReceiverFactory: Send + Sync {
    /// The type in component ids (`otlp`).
    fn type_name(&self) -> &'static str;
    /// Parses and validates `config`, and builds a receiver sending to `next`.
    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Receiver>, ConfigError>;
}

/// Builds processors of one type.
pub trait ProcessorFactory: Send + Sync {
    /// The type in component ids (`filter`).
    fn type_name(&self) -> &'static str;
    /// Parses and validates `config`, and builds a processor sending to `next`.
    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Processor>, ConfigError>;
}

/// Builds exporters of one type.
pub trait ExporterFactory: Send + Sync {
    /// The type in component ids (`file`).
    fn type_name(&self) -> &'static str;
    /// Parses and validates `config`, and builds an exporter.
    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Exporter>, ConfigError>;
}

/// Every component type the binary knows.
#[derive(Default)]
pub struct Registry {
    pub(crate) receivers: BTreeMap<&'static str, Box<dyn ReceiverFactory>>,
    pub(crate) processors: BTreeMap<&'static str, Box<dyn ProcessorFactory>>,
    pub(crate) exporters: BTreeMap<&'static str, Box<dyn ExporterFactory>>,
    pub(crate) extensions: BTreeMap<&'static str, Box<dyn ExtensionFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a receiver type.
    pub fn receiver(mut self, factory: impl ReceiverFactory + 'static) -> Self {
        self.receivers
            .insert(factory.type_name(), Box::new(factory));
        self
    }

    /// Adds a processor type.
    pub fn processor(mut self, factory: impl ProcessorFactory + 'static) -> Self {
        self.processors
            .insert(factory.type_name(), Box::new(factory));
        self
    }

    /// Adds an exporter type.
    pub fn exporter(mut self, factory: impl ExporterFactory + 'static) -> Self {
        self.exporters
            .insert(factory.type_name(), Box::new(factory));
        self
    }

    /// Adds an extension type.
    pub fn extension(mut self, factory: impl ExtensionFactory + 'static) -> Self {
        self.extensions
            .insert(factory.type_name(), Box::new(factory));
        self
    }

    /// The known types of a section, for error messages.
    pub fn types(&self, kind: ComponentKind) -> Vec<&'static str> {
        match kind {
            ComponentKind::Receiver => self.receivers.keys().copied().collect(),
            ComponentKind::Processor => self.processors.keys().copied().collect(),
            ComponentKind::Exporter => self.exporters.keys().copied().collect(),
            ComponentKind::Extension => self.extensions.keys().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_type_and_name() {
        let id = ComponentId::parse("otlp/flipt-in").unwrap();
        assert_eq!((id.type_name(), id.name()), ("otlp", Some("flipt-in")));
        assert_eq!(id.to_string(), "otlp/flipt-in");
        assert_eq!(ComponentId::parse("file").unwrap().name(), None);
    }

    #[test]
    fn bad_ids_are_rejected() {
        for bad in ["", "OTLP", "otlp/", "9x", "otlp/a b", "ot-lp"] {
            assert!(ComponentId::parse(bad).is_err(), "{bad}");
        }
    }
}
