//! Component traits, factories and the registry.
//!
//! A component is built from its config by a factory without side effects
//! (so `auditcol validate` can build the whole graph), acquires its
//! resources (sockets, files) in [`Component::start`] and lets go of them in
//! [`Component::shutdown`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::config::ConfigError;
use crate::consumer::{LogsConsumer, SharedConsumer};

/// The section a component belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    Receiver,
    Processor,
    Exporter,
}

impl ComponentKind {
    /// The config section: `receivers`, `processors` or `exporters`.
    pub fn section(self) -> &'static str {
        match self {
            Self::Receiver => "receivers",
            Self::Processor => "processors",
            Self::Exporter => "exporters",
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
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The component's id.
    pub id: ComponentId,
    /// For processors (one instance per pipeline): the pipeline's id.
    pub pipeline: Option<String>,
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

/// Lifecycle shared by every component.
#[async_trait]
pub trait Component: Send + Sync + 'static {
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

    /// The known types of a section, for error messages.
    pub fn types(&self, kind: ComponentKind) -> Vec<&'static str> {
        match kind {
            ComponentKind::Receiver => self.receivers.keys().copied().collect(),
            ComponentKind::Processor => self.processors.keys().copied().collect(),
            ComponentKind::Exporter => self.exporters.keys().copied().collect(),
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
