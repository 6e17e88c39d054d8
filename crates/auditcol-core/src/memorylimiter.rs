//! The memory limiter's state, shared by the `memory_limiter` processor and
//! the receivers that feed its pipelines.
//!
//! The Collector's `memory_limiter` measures the heap every `check_interval`
//! and refuses data above a soft limit. A processor sees a batch only once
//! it is decoded, which is where the memory went; so here the receivers ask
//! the same limiter *before* they read a request ([`Admission::admit`]) and
//! account what it costs as it grows ([`Reservation::grow`]: the bytes
//! received, then the cost of decoding them), until the pipeline answered.
//!
//! Two figures make the usage:
//! - **in flight**: what admitted requests have reserved and not released;
//! - **measured**: the process's resident memory (`VmRSS`, `/proc/self/status`), read
//!   again when `check_interval` has passed since the last reading, on the
//!   next check (no task of its own). What it shows beyond what was in
//!   flight at that moment is the rest of the process (the binary, queues,
//!   exporters' buffers): `other`.
//!
//! A new request is refused when `max(measured, other + in flight)` is over
//! the soft limit; a reservation may grow only while `other + in flight`
//! stays at or under the hard limit. So what input costs never takes the
//! accounted memory over the hard limit: a request that would is refused
//! (with backpressure, before it is acknowledged) and lets go of what it had.
//!
//! ```
//! use std::time::Duration;
//! use auditcol_core::memorylimiter::{Admission, Limits, MemoryLimiter};
//!
//! let limiter = MemoryLimiter::new(
//!     Limits { hard: 100 << 20, soft: 80 << 20 },
//!     Duration::from_secs(1),
//! );
//! let admission = Admission::new(vec![limiter.clone()]);
//! let mut reservation = admission.admit().unwrap();
//! reservation.grow(4 << 20).unwrap();
//! assert_eq!(limiter.in_flight(), 4 << 20);
//! drop(reservation); // the pipeline answered
//! assert_eq!(limiter.in_flight(), 0);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::PipelineError;

/// How long a refused client is asked to wait (gRPC `RetryInfo`, HTTP
/// `Retry-After`).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The two limits, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Input never takes the accounted memory over this.
    pub hard: u64,
    /// Above this, new data is refused.
    pub soft: u64,
}

/// Reads the process's memory in bytes; `None` when it cannot be read.
pub type Measure = fn() -> Option<u64>;

/// One memory limiter: its limits and what it has seen. Cheap to clone:
/// clones share their state.
#[derive(Clone)]
pub struct MemoryLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    check_interval: Duration,
    measure: Measure,
    in_flight: AtomicU64,
    /// Resident memory at the last reading.
    measured: AtomicU64,
    /// What that reading showed beyond the bytes in flight then.
    other: AtomicU64,
    last_reading: Mutex<Option<Instant>>,
    refused: AtomicU64,
}

impl std::fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLimiter")
            .field("limits", &self.shared.limits)
            .field("in_flight", &self.in_flight())
            .field("measured", &self.measured())
            .finish()
    }
}

impl MemoryLimiter {
    /// A limiter measuring the process's resident memory.
    pub fn new(limits: Limits, check_interval: Duration) -> Self {
        Self::with_measure(limits, check_interval, resident_memory)
    }

    /// A limiter measuring with `measure` (tests give a fixed figure).
    pub fn with_measure(limits: Limits, check_interval: Duration, measure: Measure) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                check_interval,
                measure,
                in_flight: AtomicU64::new(0),
                measured: AtomicU64::new(0),
                other: AtomicU64::new(0),
                last_reading: Mutex::new(None),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// Bytes reserved by requests in flight.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Resident memory at the last reading (0 before the first).
    pub fn measured(&self) -> u64 {
        self.shared.measured.load(Ordering::Relaxed)
    }

    /// Requests and batches refused so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Whether two handles share one limiter.
    pub fn same_as(&self, other: &MemoryLimiter) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Reads the process's memory again if `check_interval` has passed
    /// since the last reading (one caller reads; the others go on with the
    /// last figures).
    fn refresh(&self) {
        let shared = &self.shared;
        let Ok(mut last) = shared.last_reading.try_lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < shared.check_interval) {
            return;
        }
        *last = Some(now);
        if let Some(measured) = (shared.measure)() {
            let in_flight = shared.in_flight.load(Ordering::Relaxed);
            shared.measured.store(measured, Ordering::Relaxed);
            shared
                .other
                .store(measured.saturating_sub(in_flight), Ordering::Relaxed);
        }
    }

    /// The usage new data is judged by: the larger of the last reading and
    /// the rest of the process plus what is in flight now.
    pub fn usage(&self) -> u64 {
        self.refresh();
        let shared = &self.shared;
        let accounted = shared.other.load(Ordering::Relaxed) + self.in_flight();
        accounted.max(self.measured())
    }

    /// Backpressure if the measured memory is over the soft limit: the
    /// check of the `memory_limiter` processor, as in the Collector (which
    /// measures its heap). Batches from receivers that account their
    /// requests were already judged by [`Admission::admit`], with their
    /// own bytes in flight.
    pub fn check_measured(&self) -> Result<(), PipelineError> {
        self.refresh();
        let measured = self.measured();
        if measured > self.shared.limits.soft {
            return Err(self.refusal(measured));
        }
        Ok(())
    }

    fn check_soft(&self) -> Result<(), PipelineError> {
        let usage = self.usage();
        if usage > self.shared.limits.soft {
            return Err(self.refusal(usage));
        }
        Ok(())
    }

    /// Adds `bytes` in flight if that keeps the accounted memory (and the
    /// last reading) at or under the hard limit.
    fn try_add(&self, bytes: u64) -> Result<(), PipelineError> {
        let shared = &self.shared;
        let other = shared.other.load(Ordering::Relaxed);
        let hard = shared.limits.hard;
        let measured = self.measured();
        let added =
            shared
                .in_flight
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |in_flight| {
                    let total = other.saturating_add(in_flight).saturating_add(bytes);
                    (total <= hard && measured <= hard).then_some(in_flight + bytes)
                });
        match added {
            Ok(_) => Ok(()),
            Err(in_flight) => Err(self.refusal(other.saturating_add(in_flight) + bytes)),
        }
    }

    fn release(&self, bytes: u64) {
        self.shared.in_flight.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn refusal(&self, usage: u64) -> PipelineError {
        self.shared.refused.fetch_add(1, Ordering::Relaxed);
        let Limits { hard, soft } = self.shared.limits;
        PipelineError::backpressure(
            format!(
                "memory limit reached: {} MiB in use, soft limit {} MiB, hard limit {} MiB; retry later",
                usage >> 20,
                soft >> 20,
                hard >> 20
            ),
            Some(RETRY_AFTER),
        )
    }
}

/// The memory limiters a receiver answers to: those of the pipelines it
/// feeds, each once. Empty when none of them has a `memory_limiter`, and
/// then every request is admitted and nothing is counted.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    limiters: Arc<[MemoryLimiter]>,
}

impl Admission {
    /// Admission by these limiters (a limiter given twice counts once).
    pub fn new(limiters: Vec<MemoryLimiter>) -> Self {
        let mut distinct: Vec<MemoryLimiter> = Vec::with_capacity(limiters.len());
        for limiter in limiters {
            if !distinct.iter().any(|l| l.same_as(&limiter)) {
                distinct.push(limiter);
            }
        }
        Self {
            limiters: distinct.into(),
        }
    }

    /// True when no limiter applies.
    pub fn is_unlimited(&self) -> bool {
        self.limiters.is_empty()
    }

    /// Lets a new request in, or answers backpressure when any limiter is
    /// over its soft limit. Call before reading the request's body; hold
    /// the reservation until the pipeline has answered.
    pub fn admit(&self) -> Result<Reservation, PipelineError> {
        for limiter in self.limiters.iter() {
            limiter.check_soft()?;
        }
        Ok(Reservation {
            limiters: self.limiters.clone(),
            bytes: 0,
        })
    }
}

/// The bytes one admitted request holds; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    limiters: Arc<[MemoryLimiter]>,
    bytes: u64,
}

impl Reservation {
    /// Reserves `bytes` more (bytes received, or about to be allocated), or
    /// answers backpressure, reserving nothing, when that would take a
    /// limiter over its hard limit.
    pub fn grow(&mut self, bytes: usize) -> Result<(), PipelineError> {
        if self.limiters.is_empty() || bytes == 0 {
            return Ok(());
        }
        let bytes = bytes as u64;
        for (i, limiter) in self.limiters.iter().enumerate() {
            if let Err(e) = limiter.try_add(bytes) {
                for added in &self.limiters[..i] {
                    added.release(bytes);
                }
                return Err(e);
            }
        }
        self.bytes += bytes;
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            for limiter in self.limiters.iter() {
                limiter.release(self.bytes);
            }
        }
    }
}

/// The process's resident memory in bytes (`VmRSS` of
/// `/proc/self/status`, Linux); `None` elsewhere.
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmRSS:")
}

/// A `Name:   1234 kB` line of a `/proc` file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// The memory the process may use, for `limit_percentage`: its cgroup's
/// limit when it has one (v2 `memory.max`, v1 `memory.limit_in_bytes`),
/// else the machine's (`MemTotal` of `/proc/meminfo`).
pub fn total_memory() -> Option<u64> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| kib_field(&text, "MemTotal:"));
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| std::fs::read_to_string(path).ok())
    .and_then(|text| text.trim().parse::<u64>().ok());
    match (cgroup, machine) {
        // v1 reports "no limit" as a huge number.
        (Some(limit), Some(total)) => Some(limit.min(total)),
        (limit, total) => limit.or(total),
    }
}

#[cfg(test)]
mod tests;
