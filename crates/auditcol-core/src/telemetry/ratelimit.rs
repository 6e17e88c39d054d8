//! Logs of drops and refusals that a flood cannot turn into a flood of
//! lines: the first occurrence with its details, then at most one summary
//! per interval with the count since.

use std::fmt::{self, Display};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The level of a [`RateLimitedLog`]'s lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Expected drops (filter rules): INFO.
    Info,
    /// Refusals and drops an operator should look into: WARN.
    Warn,
}

/// One kind of drop or refusal of one component, logged rate-limited.
///
/// The first occurrence is logged at once with its details (reason, client
/// address, error); after that, occurrences are only counted, and a summary
/// line — how many since the last line, how many records, the last client —
/// is written when the interval has passed: by the next occurrence, or by
/// [`RateLimitedLog::flush_if_due`] (the service calls it every second), so
/// a burst that stops is still reported. Counting costs a few atomic adds.
///
/// ```
/// use std::time::Duration;
/// use auditcol_core::telemetry::{LogLevel, RateLimitedLog};
///
/// let log = RateLimitedLog::new(LogLevel::Warn, "refused a request", "receivers::otlp (http)", "invalid", Duration::from_secs(10));
/// log.record(3, None, &"resourceLogs[0]: not a valid message"); // logged at once
/// log.record(1, None, &"..."); // counted, summarised later
/// assert_eq!(log.pending(), (1, 1));
/// ```
pub struct RateLimitedLog {
    level: LogLevel,
    what: &'static str,
    component: String,
    reason: &'static str,
    interval: Duration,
    start: Instant,
    first_logged: AtomicBool,
    /// Nanoseconds after `start` from which the next summary is due.
    next_due: AtomicU64,
    /// Occurrences and records since the last line.
    pending: AtomicU64,
    pending_records: AtomicU64,
    last_client: Mutex<Option<SocketAddr>>,
}

/// What [`RateLimitedLog::record`] decided to write.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The first occurrence, with its details.
    First,
    /// A summary of `count` occurrences, `records` records.
    Summary {
        count: u64,
        records: u64,
        last_client: Option<SocketAddr>,
    },
}

impl fmt::Debug for RateLimitedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitedLog")
            .field("component", &self.component)
            .field("what", &self.what)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl RateLimitedLog {
    /// A log of `what` (`refused a request`) by `component`
    /// (`receivers::otlp (http)`) for `reason`, at most one summary per `interval`.
    pub fn new(
        level: LogLevel,
        what: &'static str,
        component: &str,
        reason: &'static str,
        interval: Duration,
    ) -> Self {
        Self {
            level,
            what,
            component: component.to_owned(),
            reason,
            interval,
            start: Instant::now(),
            first_logged: AtomicBool::new(false),
            next_due: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            pending_records: AtomicU64::new(0),
            last_client: Mutex::new(None),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn interval_nanos(&self) -> u64 {
        u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX)
    }

    /// One occurrence concerning `records` records (0 when unknown), from
    /// `client` if there is one; `detail` (the error) is written only when
    /// this is the first occurrence.
    pub fn record(&self, records: usize, client: Option<SocketAddr>, detail: &dyn Display) {
        match self.note(records, client) {
            Some(Line::First) => self.write_first(records, client, detail),
            Some(line) => self.write(line),
            None => {}
        }
    }

    /// Counts an occurrence; says what to write, if anything.
    pub(crate) fn note(&self, records: usize, client: Option<SocketAddr>) -> Option<Line> {
        if !self.first_logged.load(Ordering::Relaxed)
            && !self.first_logged.swap(true, Ordering::AcqRel)
        {
            self.next_due.store(
                self.now().saturating_add(self.interval_nanos()),
                Ordering::Release,
            );
            return Some(Line::First);
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.pending_records
            .fetch_add(records as u64, Ordering::AcqRel);
        if let Some(client) = client
            && let Ok(mut last) = self.last_client.try_lock()
        {
            *last = Some(client);
        }
        self.take_if_due()
    }

    /// The summary, if one is due and something is pending.
    fn take_if_due(&self) -> Option<Line> {
        let now = self.now();
        let due = self.next_due.load(Ordering::Acquire);
        if now < due || self.pending.load(Ordering::Acquire) == 0 {
            return None;
        }
        // One caller wins the right to write this summary.
        self.next_due
            .compare_exchange(
                due,
                now.saturating_add(self.interval_nanos()),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .ok()?;
        self.take()
    }

    fn take(&self) -> Option<Line> {
        let count = self.pending.swap(0, Ordering::AcqRel);
        if count == 0 {
            return None;
        }
        let records = self.pending_records.swap(0, Ordering::AcqRel);
        let last_client = *self
            .last_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Line::Summary {
            count,
            records,
            last_client,
        })
    }

    /// Writes the summary if the interval has passed since the last line
    /// and something happened since.
    pub fn flush_if_due(&self) {
        if let Some(line) = self.take_if_due() {
            self.write(line);
        }
    }

    /// Writes whatever is pending now (at shutdown).
    pub fn flush(&self) {
        if let Some(line) = self.take() {
            self.write(line);
        }
    }

    /// Occurrences and records counted since the last line.
    pub fn pending(&self) -> (u64, u64) {
        (
            self.pending.load(Ordering::Acquire),
            self.pending_records.load(Ordering::Acquire),
        )
    }

    fn write_first(&self, records: usize, client: Option<SocketAddr>, detail: &dyn Display) {
        let client = Client(client);
        let interval = crate::config::ConfigDuration(self.interval);
        macro_rules! line {
            ($macro:ident) => {
                tracing::$macro!(
                    component = %self.component,
                    reason = self.reason,
                    client = %client,
                    records,
                    error = %detail,
                    "{}; more like it are summarised every {interval}",
                    self.what,
                )
            };
        }
        match self.level {
            LogLevel::Info => line!(info),
            LogLevel::Warn => line!(warn),
        }
    }

    fn write(&self, line: Line) {
        let Line::Summary {
            count,
            records,
            last_client,
        } = line
        else {
            return;
        };
        let last_client = Client(last_client);
        macro_rules! line {
            ($macro:ident) => {
                tracing::$macro!(
                    component = %self.component,
                    reason = self.reason,
                    count,
                    records,
                    last_client = %last_client,
                    "{}: {count} more since the last report",
                    self.what,
                )
            };
        }
        match self.level {
            LogLevel::Info => line!(info),
            LogLevel::Warn => line!(warn),
        }
    }
}

/// A client address, or `-` when there is none (a drop inside the pipeline).
struct Client(Option<SocketAddr>);

impl Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(interval_secs: u64) -> RateLimitedLog {
        RateLimitedLog::new(
            LogLevel::Warn,
            "refused a request",
            "receivers::otlp (http)",
            "invalid",
            Duration::from_secs(interval_secs),
        )
    }

    fn client(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_occurrence_is_written_at_once() {
        let log = log(10);
        assert_eq!(log.note(3, client(1)), Some(Line::First));
        assert_eq!(log.pending(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn later_occurrences_are_counted_until_the_interval_has_passed() {
        let log = log(10);
        log.note(3, client(1));
        for port in 2..=5 {
            assert_eq!(log.note(2, client(port)), None);
        }
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(log.note(1, client(6)), None);
        assert_eq!(log.pending(), (5, 9));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            log.note(1, client(7)),
            Some(Line::Summary {
                count: 6,
                records: 10,
                last_client: client(7)
            })
        );
        assert_eq!(log.pending(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_one_summary_per_interval() {
        let log = log(10);
        log.note(1, None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(matches!(
            log.note(1, None),
            Some(Line::Summary { count: 1, .. })
        ));
        // Due again only 10 s after that summary.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(log.note(1, None), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(matches!(
            log.note(1, None),
            Some(Line::Summary { count: 2, .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_that_stops_is_summarised_by_the_periodic_flush() {
        let log = log(10);
        log.note(1, client(1));
        log.note(4, client(2));
        log.note(4, client(3));
        assert_eq!(log.take_if_due(), None, "not due yet");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            log.take_if_due(),
            Some(Line::Summary {
                count: 2,
                records: 8,
                last_client: client(3)
            })
        );
        // Nothing new: nothing to write, however long it is quiet.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(log.take_if_due(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn flush_writes_what_is_pending_due_or_not() {
        let log = log(10);
        log.note(1, None);
        log.note(2, None);
        assert_eq!(
            log.take(),
            Some(Line::Summary {
                count: 1,
                records: 2,
                last_client: None
            })
        );
        assert_eq!(log.take(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn lines_name_the_component_reason_client_and_error() {
        let (captured, _guard) = auditcol_testkit::CapturedLog::start();
        let log = log(10);
        log.record(
            3,
            client(4000),
            &"resourceLogs[0]: attribute audit.action is missing",
        );
        log.record(2, client(4001), &"not written");
        tokio::time::advance(Duration::from_secs(10)).await;
        log.flush_if_due();
        let text = captured.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("WARN"), "{text}");
        for part in [
            "refused a request; more like it are summarised every 10s",
            "component=receivers::otlp (http)",
            "reason=\"invalid\"",
            "client=127.0.0.1:4000",
            "records=3",
            "error=resourceLogs[0]: attribute audit.action is missing",
        ] {
            assert!(lines[0].contains(part), "{part:?} in {}", lines[0]);
        }
        for part in [
            "refused a request: 1 more since the last report",
            "count=1",
            "records=2",
            "last_client=127.0.0.1:4001",
        ] {
            assert!(lines[1].contains(part), "{part:?} in {}", lines[1]);
        }
        assert!(!text.contains("not written"), "{text}");
    }
}
