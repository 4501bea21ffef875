//! Per-object exponential backoff for retries (the crate's jittered policy), reset by the next
//! success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::backoff::{backoff_delay, random_unit};

/// First retry delay for problems that can clear up by themselves (KMS or API unreachable).
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(10);
/// First retry delay for configuration problems, which usually need a change of spec or Secret.
pub const CONFIGURATION_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between two retries of one object.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// `base` doubled for every failure of `key` since its last success, up to
    /// [`MAX_RETRY_DELAY`], less up to half at random.
    pub fn next_delay(&self, key: &str, base: Duration) -> Duration {
        self.next_delay_with(key, base, random_unit())
    }

    fn next_delay_with(&self, key: &str, base: Duration, jitter: f64) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return base;
        };
        let count = failures.entry(key.to_string()).or_insert(0);
        let delay = backoff_delay(*count, base, MAX_RETRY_DELAY, jitter);
        *count = count.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key`.
    pub fn reset(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let backoff = Backoff::default();
        let base = Duration::from_secs(5);
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay_with("a", base, 0.0).as_secs())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            backoff.next_delay_with("b", base, 0.0).as_secs(),
            5,
            "keys are independent"
        );
        backoff.reset("a");
        assert_eq!(backoff.next_delay_with("a", base, 0.0).as_secs(), 5);
        let jittered = backoff.next_delay("a", base);
        assert!((base..=base * 2).contains(&jittered), "{jittered:?}");
    }
}
