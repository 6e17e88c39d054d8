//! The collector's own telemetry: metrics named as the OpenTelemetry
//! Collector names its internal metrics, and rate-limited logs of what was
//! dropped or refused.
//!
//! A component finds a [`Telemetry`] in its
//! [`BuildContext`](crate::BuildContext) and resolves its handles there,
//! once: a [`Counter`] handle is an atomic behind an `Arc`, so counting on
//! the hot path is one atomic add — no label lookup, no lock.
//!
//! ```
//! use auditcol_core::telemetry::{MetricsLevel, MetricSpec, Telemetry};
//!
//! const SENT: MetricSpec = MetricSpec::counter(
//!     "otelcol_exporter_sent_log_records",
//!     "Number of log records successfully sent to destination",
//!     MetricsLevel::Basic,
//! );
//! let telemetry = Telemetry::new(MetricsLevel::Normal);
//! let sent = telemetry.counter(&SENT, &[("exporter", "file")]);
//! sent.inc_by(3);
//! assert!(telemetry.encode().contains("otelcol_exporter_sent_log_records_total{exporter=\"file\"} 3\n"));
//! ```
//!
//! Metrics are exposed in the OpenMetrics text format (what Prometheus
//! negotiates), so counters carry the `_total` suffix on their samples:
//! see `docs/metrics.md` for every metric and how the names compare with a
//! Collector's.
//!
//! What the components count is defined next to them, in the shapes the
//! Collector uses: [`ReceiverTelemetry`], [`ProcessorTelemetry`],
//! [`ExporterTelemetry`]. Drops and refusals are also logged through a
//! [`RateLimitedLog`]: the first occurrence with its details, then at most
//! one summary per interval.

mod components;
mod ratelimit;
#[cfg(feature = "axum")]
pub mod server;

pub use components::{
    CloseReason, DropReason, Drops, ExporterTelemetry, METRICS, ReceiverTelemetry, RefusalReason,
};
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::gauge::Gauge;
pub use ratelimit::{LogLevel, RateLimitedLog};

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// How much the collector tells about itself, as the Collector's
/// `service.telemetry.metrics.level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsLevel {
    /// No metrics: the endpoint is not served.
    None,
    /// The Collector's `otelcol_*` metrics of receivers, processors and exporters.
    Basic,
    /// Also auditcol's own `auditcol_*` metrics (drops by reason, refusals
    /// by reason, Kafka commit lag, persistent-queue fsyncs).
    #[default]
    Normal,
    /// Everything: today the same as `normal`.
    Detailed,
}

impl fmt::Display for MetricsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Basic => "basic",
            Self::Normal => "normal",
            Self::Detailed => "detailed",
        })
    }
}

/// One metric family: its name, what it means, its type and the level
/// from which it is exposed. Components declare theirs as constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    /// The family name, without the `_total` a counter's samples get.
    pub name: &'static str,
    /// The `# HELP` text (no final period: the encoder adds one).
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// Exposed from this level on.
    pub level: MetricsLevel,
}

/// The type of a [`MetricSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up; samples are named `<name>_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl MetricSpec {
    /// A counter.
    pub const fn counter(name: &'static str, help: &'static str, level: MetricsLevel) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Counter,
            level,
        }
    }

    /// A gauge.
    pub const fn gauge(name: &'static str, help: &'static str, level: MetricsLevel) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Gauge,
            level,
        }
    }
}

/// Label pairs, sorted by name (the order the Collector writes them in).
type Labels = Vec<(&'static str, String)>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    let mut labels: Labels = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    labels.sort_by_key(|(k, _)| *k);
    labels
}

/// A value read when metrics are scraped (a queue's fill level), or `None`
/// when there is nothing to report (the queue is not open yet).
pub type Observation = Box<dyn Fn() -> Option<u64> + Send + Sync>;

/// The default time between two summaries of one [`RateLimitedLog`].
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The collector's metrics registry and the handles of its components.
///
/// Cheap to clone: clones share one registry. [`Telemetry::disabled`]
/// (what a component built outside a service gets) hands out handles that
/// count but are exposed nowhere, each its own.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    level: MetricsLevel,
    /// `None` when disabled: handles are then detached.
    exposed: Option<Exposed>,
    log_interval: Duration,
    /// Every log made through [`Telemetry::rate_limited_log`], for the
    /// periodic summaries.
    logs: Mutex<Vec<Weak<RateLimitedLog>>>,
}

struct Exposed {
    registry: Mutex<Registry>,
    /// Families registered so far, by name: a second component asking for a
    /// family gets the same one.
    families: Mutex<HashMap<&'static str, Box<dyn Any + Send + Sync>>>,
    observed: Arc<Observed>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("level", &self.inner.level)
            .field("exposed", &self.inner.exposed.is_some())
            .finish()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::disabled()
    }
}

impl Telemetry {
    /// A registry exposing the metrics of `level` and below; `None` is
    /// [`Telemetry::disabled`].
    pub fn new(level: MetricsLevel) -> Self {
        Self::with_log_interval(level, DEFAULT_LOG_INTERVAL)
    }

    /// [`Telemetry::new`] with summaries of drops and refusals every `interval`.
    pub fn with_log_interval(level: MetricsLevel, log_interval: Duration) -> Self {
        let exposed = (level != MetricsLevel::None).then(|| {
            let mut registry = Registry::default();
            // The resource, as the Collector exposes it: `target_info`.
            registry.register(
                "target",
                "Target metadata",
                Info::new(vec![
                    ("service_instance_id", service_instance_id()),
                    ("service_name", "auditcol".to_owned()),
                    ("service_version", env!("CARGO_PKG_VERSION").to_owned()),
                ]),
            );
            let observed = Arc::new(Observed::default());
            registry.register_collector(Box::new(observed.clone()));
            Exposed {
                registry: Mutex::new(registry),
                families: Mutex::new(HashMap::new()),
                observed,
            }
        });
        Self {
            inner: Arc::new(Inner {
                level,
                exposed,
                log_interval,
                logs: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Telemetry that exposes nothing: handles count, each on its own.
    pub fn disabled() -> Self {
        Self::new(MetricsLevel::None)
    }

    /// The level metrics are exposed at.
    pub fn level(&self) -> MetricsLevel {
        self.inner.level
    }

    /// True when the metrics of `spec` are exposed.
    fn exposes(&self, spec: &MetricSpec) -> Option<&Exposed> {
        self.inner
            .exposed
            .as_ref()
            .filter(|_| spec.level <= self.inner.level)
    }

    fn family<M>(&self, exposed: &Exposed, spec: &MetricSpec) -> Family<Labels, M>
    where
        M: EncodeMetric + Default + Clone + fmt::Debug + Send + Sync + 'static,
        Family<Labels, M>: prometheus_client::registry::Metric,
    {
        let mut families = exposed
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = families.get(spec.name) {
            if let Some(family) = existing.downcast_ref::<Family<Labels, M>>() {
                return family.clone();
            }
            // Two specs with one name and different types: a programming
            // error; the second is counted but not exposed.
            tracing::error!(
                metric = spec.name,
                "a metric is declared twice with different types"
            );
            return Family::default();
        }
        let family = Family::<Labels, M>::default();
        exposed
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(spec.name, spec.help, family.clone());
        families.insert(spec.name, Box::new(family.clone()));
        family
    }

    /// The counter of `spec` with `labels`, to keep and add to. Asking again
    /// for the same labels gives the same counter.
    pub fn counter(&self, spec: &MetricSpec, labels_: &[(&'static str, &str)]) -> Counter {
        debug_assert_eq!(spec.kind, MetricKind::Counter, "{}", spec.name);
        match self.exposes(spec) {
            None => Counter::default(),
            Some(exposed) => self
                .family::<Counter>(exposed, spec)
                .get_or_create_owned(&labels(labels_)),
        }
    }

    /// The gauge of `spec` with `labels`, to keep and set.
    pub fn gauge(&self, spec: &MetricSpec, labels_: &[(&'static str, &str)]) -> Gauge {
        debug_assert_eq!(spec.kind, MetricKind::Gauge, "{}", spec.name);
        match self.exposes(spec) {
            None => Gauge::default(),
            Some(exposed) => self
                .family::<Gauge>(exposed, spec)
                .get_or_create_owned(&labels(labels_)),
        }
    }

    /// Reports `spec` with `labels` by calling `read` at every scrape (a
    /// queue's fill level, a count kept elsewhere); nothing is reported
    /// while `read` answers `None`. Keep `read` from holding the component
    /// alive (capture a `Weak`).
    pub fn observe(&self, spec: &MetricSpec, labels_: &[(&'static str, &str)], read: Observation) {
        if let Some(exposed) = self.exposes(spec) {
            exposed.observed.add(*spec, labels(labels_), read);
        }
    }

    /// A log of drops or refusals of one kind, rate-limited to one summary
    /// per interval; summaries that fall due while nothing happens are
    /// written by [`Telemetry::flush_logs`].
    pub fn rate_limited_log(
        &self,
        level: LogLevel,
        what: &'static str,
        component: &str,
        reason: &'static str,
    ) -> Arc<RateLimitedLog> {
        let log = Arc::new(RateLimitedLog::new(
            level,
            what,
            component,
            reason,
            self.inner.log_interval,
        ));
        let mut logs = self
            .inner
            .logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        logs.retain(|l| l.strong_count() > 0);
        logs.push(Arc::downgrade(&log));
        log
    }

    /// Writes the summaries that are due (`all`: every pending one, at
    /// shutdown).
    pub fn flush_logs(&self, all: bool) {
        let logs: Vec<Arc<RateLimitedLog>> = self
            .inner
            .logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for log in logs {
            if all {
                log.flush();
            } else {
                log.flush_if_due();
            }
        }
    }

    /// Writes due summaries every second until `stop`, then every pending one.
    pub async fn run_log_summaries(self, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => self.flush_logs(false),
            }
        }
        self.flush_logs(true);
    }

    /// The names of every family registered so far (for the documentation test).
    pub fn registered_names(&self) -> Vec<&'static str> {
        let Some(exposed) = &self.inner.exposed else {
            return Vec::new();
        };
        let mut names: Vec<&'static str> = exposed
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .chain(exposed.observed.names())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The value of the exposed sample `name` (`…_total` for a counter)
    /// whose labels are exactly `labels` (for tests).
    #[cfg(any(test, feature = "test-util"))]
    pub fn sample(&self, name: &str, labels: &[(&'static str, &str)]) -> Option<f64> {
        let labels = self::labels(labels)
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",");
        let head = format!("{name}{{{labels}}} ");
        self.encode()
            .lines()
            .find_map(|line| line.strip_prefix(&head))
            .map(|v| v.parse().expect("a number"))
    }

    /// Every exposed metric in the OpenMetrics text format, `# EOF` included.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Some(exposed) = &self.inner.exposed {
            let registry = exposed
                .registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        } else {
            text.push_str("# EOF\n");
        }
        text
    }
}

/// The `service.instance.id` of this process: random, as the Collector's.
fn service_instance_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Values read at scrape time, as a registry collector.
#[derive(Default)]
struct Observed {
    entries: Mutex<Vec<(MetricSpec, Labels, Observation)>>,
}

impl fmt::Debug for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observed").finish_non_exhaustive()
    }
}

impl Observed {
    fn add(&self, spec: MetricSpec, labels: Labels, read: Observation) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((spec, labels, read));
    }

    fn names(&self) -> Vec<&'static str> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(spec, _, _)| spec.name)
            .collect()
    }
}

impl Collector for Observed {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // One descriptor per family, its samples under it, in the order the
        // families were first observed.
        let mut specs: Vec<MetricSpec> = Vec::new();
        for (spec, _, _) in entries.iter() {
            if !specs.iter().any(|s| s.name == spec.name) {
                specs.push(*spec);
            }
        }
        for spec in specs {
            let samples: Vec<(&Labels, u64)> = entries
                .iter()
                .filter(|(s, _, _)| s.name == spec.name)
                .filter_map(|(_, labels, read)| Some((labels, read()?)))
                .collect();
            if samples.is_empty() {
                continue;
            }
            let metric_type = match spec.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
            };
            let mut family = encoder.encode_descriptor(spec.name, spec.help, None, metric_type)?;
            for (labels, value) in samples {
                let mut sample = family.encode_family(labels)?;
                match spec.kind {
                    MetricKind::Counter => {
                        sample.encode_counter::<NoLabelSet, u64, u64>(&value, None)?
                    }
                    MetricKind::Gauge => {
                        sample.encode_gauge(&i64::try_from(value).unwrap_or(i64::MAX))?
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
