//! Exponential backoff with jitter.

use std::time::Duration;

use rand::Rng;

use super::settings::RetrySettings;

/// The waits between attempts of one batch.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
    multiplier: f64,
    randomization_factor: f64,
}

impl Backoff {
    pub(crate) fn new(settings: &RetrySettings) -> Self {
        Self {
            next: settings.initial_interval.0,
            max: settings.max_interval.0,
            multiplier: settings.multiplier,
            randomization_factor: settings.randomization_factor,
        }
    }

    /// The next wait, randomised; grows the base for the one after.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = base.mul_f64(self.multiplier).min(self.max);
        jitter(base, self.randomization_factor)
    }
}

/// A duration drawn uniformly from `[base·(1-f), base·(1+f)]`, so that
/// exporters failing together do not retry in lock-step.
fn jitter(base: Duration, factor: f64) -> Duration {
    if factor == 0.0 || base.is_zero() {
        return base;
    }
    let low = base.as_secs_f64() * (1.0 - factor);
    let high = base.as_secs_f64() * (1.0 + factor);
    Duration::from_secs_f64(rand::rng().random_range(low..=high))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDuration;

    fn settings(factor: f64) -> RetrySettings {
        RetrySettings {
            initial_interval: ConfigDuration::from_secs(1),
            max_interval: ConfigDuration::from_secs(4),
            multiplier: 2.0,
            randomization_factor: factor,
            ..RetrySettings::default()
        }
    }

    #[test]
    fn waits_grow_by_the_multiplier_up_to_max_interval() {
        let mut b = Backoff::new(&settings(0.0));
        let waits: Vec<u64> = (0..5).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 4, 4]);
    }

    #[test]
    fn jitter_stays_within_the_randomization_factor() {
        let mut b = Backoff::new(&settings(0.5));
        for _ in 0..100 {
            let w = b.next_wait();
            assert!(
                w >= Duration::from_millis(500) && w <= Duration::from_secs(6),
                "{w:?}"
            );
        }
    }
}
