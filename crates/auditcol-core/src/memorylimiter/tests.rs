use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;

const MIB: u64 = 1 << 20;

fn limits() -> Limits {
    Limits {
        hard: 100 * MIB,
        soft: 80 * MIB,
    }
}

/// A limiter whose process never shows any memory beyond what is in flight.
fn accounting_only() -> MemoryLimiter {
    MemoryLimiter::with_measure(limits(), Duration::from_secs(3600), || Some(0))
}

#[test]
fn a_reservation_is_given_back_when_dropped() {
    let limiter = accounting_only();
    let admission = Admission::new(vec![limiter.clone()]);
    let mut reservation = admission.admit().unwrap();
    reservation.grow(10 << 20).unwrap();
    reservation.grow(5 << 20).unwrap();
    assert_eq!(
        (limiter.in_flight(), reservation.bytes()),
        (15 * MIB, 15 * MIB)
    );
    drop(reservation);
    assert_eq!(limiter.in_flight(), 0);
}

#[test]
fn new_requests_are_refused_above_the_soft_limit_with_backpressure() {
    let limiter = accounting_only();
    let admission = Admission::new(vec![limiter.clone()]);
    let mut held = admission.admit().unwrap();
    held.grow(81 << 20).unwrap();
    let refused = admission.admit().unwrap_err();
    assert!(
        matches!(&refused, PipelineError::Backpressure { retry_after: Some(after), .. } if *after == RETRY_AFTER),
        "{refused:?}"
    );
    assert!(refused.message().contains("soft limit 80 MiB"), "{refused}");
    drop(held);
    admission.admit().unwrap();
}

#[test]
fn a_reservation_cannot_take_the_accounted_memory_over_the_hard_limit() {
    let limiter = accounting_only();
    let admission = Admission::new(vec![limiter.clone()]);
    let mut first = admission.admit().unwrap();
    let mut second = admission.admit().unwrap();
    first.grow(60 << 20).unwrap();
    second.grow(40 << 20).unwrap();
    // Both were admitted under the soft limit; the hard one stops the third.
    let mut third = Reservation {
        limiters: admission.limiters.clone(),
        bytes: 0,
    };
    assert!(third.grow(1).is_err());
    assert_eq!((third.bytes(), limiter.in_flight()), (0, 100 * MIB));
    assert_eq!(limiter.refused(), 1);
}

static PROCESS: AtomicU64 = AtomicU64::new(0);

fn process() -> Option<u64> {
    Some(PROCESS.load(Ordering::Relaxed))
}

#[test]
fn measured_memory_counts_as_the_rest_of_the_process() {
    PROCESS.store(70 * MIB, Ordering::Relaxed);
    let limiter = MemoryLimiter::with_measure(limits(), Duration::from_secs(3600), process);
    let admission = Admission::new(vec![limiter.clone()]);
    let mut reservation = admission.admit().unwrap();
    assert_eq!(limiter.measured(), 70 * MIB);
    // 70 MiB not in flight: only 30 MiB are left under the hard limit.
    reservation.grow(30 << 20).unwrap();
    assert!(reservation.grow(1).is_err());
    // The process itself over the soft limit refuses the processor's batches too.
    assert!(limiter.check_measured().is_ok());
    PROCESS.store(90 * MIB, Ordering::Relaxed);
    // Not read again before check_interval has passed.
    assert!(limiter.check_measured().is_ok());
}

#[test]
fn memory_is_read_again_once_check_interval_has_passed() {
    fn over_soft() -> Option<u64> {
        Some(90 * MIB)
    }
    let limiter = MemoryLimiter::with_measure(limits(), Duration::ZERO, over_soft);
    assert!(limiter.check_measured().is_err());
    assert!(Admission::new(vec![limiter]).admit().is_err());
}

#[test]
fn a_limiter_given_twice_counts_a_request_once() {
    let limiter = accounting_only();
    let admission = Admission::new(vec![limiter.clone(), limiter.clone()]);
    let mut reservation = admission.admit().unwrap();
    reservation.grow(1 << 20).unwrap();
    assert_eq!(limiter.in_flight(), MIB);
}

#[test]
fn a_refused_growth_takes_back_what_it_added_to_other_limiters() {
    let roomy = MemoryLimiter::with_measure(
        Limits {
            hard: 1000 * MIB,
            soft: 800 * MIB,
        },
        Duration::from_secs(3600),
        || Some(0),
    );
    let tight = accounting_only();
    let admission = Admission::new(vec![roomy.clone(), tight.clone()]);
    let mut reservation = admission.admit().unwrap();
    assert!(reservation.grow(200 << 20).is_err());
    assert_eq!((roomy.in_flight(), tight.in_flight()), (0, 0));
}

#[test]
fn without_limiters_everything_is_admitted_and_nothing_counted() {
    let admission = Admission::default();
    let mut reservation = admission.admit().unwrap();
    reservation.grow(usize::MAX).unwrap();
    assert_eq!(reservation.bytes(), 0);
}

#[test]
fn resident_and_total_memory_are_read_on_linux() {
    let rss = resident_memory().expect("VmRSS");
    let total = total_memory().expect("MemTotal");
    assert!(rss > 0 && rss < total, "{rss} {total}");
}
