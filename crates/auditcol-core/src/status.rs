//! Where the service tells how it and each of its components are doing,
//! for the health check (and anything else that asks, through
//! [`Host::status`](crate::component::Host::status)).
//!
//! The [`Service`](crate::pipeline::Service) writes it as it starts and
//! stops components; a component may report its own failure later.
//!
//! ```
//! use auditcol_core::status::{ComponentState, ServiceState, StatusBoard};
//!
//! let board = StatusBoard::default();
//! board.set_component("receivers::otlp", ComponentState::Running);
//! board.set_service(ServiceState::Running);
//! let now = board.snapshot();
//! assert!(now.is_healthy());
//! board.set_component("receivers::otlp", ComponentState::Failed("the server stopped".into()));
//! assert!(!board.snapshot().is_healthy());
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// Where the service as a whole is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServiceState {
    /// Built, or starting its components.
    #[default]
    Starting,
    /// Every component started.
    Running,
    /// Shutting down: receivers stop, processors flush, exporters drain.
    Stopping,
    /// Every component stopped.
    Stopped,
    /// A component failed to start; the others are being stopped.
    Failed,
}

impl ServiceState {
    /// `starting`, `ok`, `stopping`, `stopped`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "ok",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }
}

/// Where one component is in its life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ComponentState {
    /// Not started yet.
    #[default]
    Pending,
    /// `start` is running.
    Starting,
    /// Started.
    Running,
    /// `shutdown` is running.
    Stopping,
    /// Stopped.
    Stopped,
    /// Failed to start, or failed while running: why.
    Failed(String),
}

impl ComponentState {
    /// `pending`, `starting`, `running`, `stopping`, `stopped`, `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed(_) => "failed",
        }
    }
}

impl fmt::Display for ComponentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(why) => write!(f, "failed: {why}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// The states of the service and of its components, shared.
#[derive(Clone, Default)]
pub struct StatusBoard {
    inner: Arc<Mutex<Snapshot>>,
}

/// The states at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The service.
    pub service: ServiceState,
    /// Each component, by `section::id` (`receivers::otlp`; a processor as
    /// `processors::batch (logs/a)`: one instance per pipeline), in the
    /// order they were first reported.
    pub components: Vec<(String, ComponentState)>,
}

impl Snapshot {
    /// The service runs and so does every component.
    pub fn is_healthy(&self) -> bool {
        self.service == ServiceState::Running
            && self
                .components
                .iter()
                .all(|(_, state)| *state == ComponentState::Running)
    }
}

impl fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl StatusBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the state of the service.
    pub fn set_service(&self, state: ServiceState) {
        self.lock().service = state;
    }

    /// Sets the state of `component` (`section::id`), adding it if new.
    pub fn set_component(&self, component: &str, state: ComponentState) {
        let mut board = self.lock();
        match board.components.iter_mut().find(|(c, _)| c == component) {
            Some((_, current)) => *current = state,
            None => board.components.push((component.to_owned(), state)),
        }
    }

    /// The states now.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }
}
