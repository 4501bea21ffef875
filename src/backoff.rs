//! The one retry-delay policy: doubling from an initial delay, capped, with up to half of it
//! taken off at random so that many clients failing together do not retry together.

use std::time::Duration;

/// Delay before retry `attempt` (0-based): doubling from `initial`, capped at `max`, with up to
/// half of it taken off at random (`jitter` in `[0, 1)`).
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exponential = initial.saturating_mul(1u32 << attempt.min(20));
    let capped = exponential.min(max);
    capped.saturating_sub(capped.mul_f64(0.5 * jitter.clamp(0.0, 1.0)))
}

/// [`backoff_delay`] with a fresh random jitter.
pub fn jittered_delay(attempt: u32, initial: Duration, max: Duration) -> Duration {
    backoff_delay(attempt, initial, max, random_unit())
}

/// A uniform delay in `[0, window)`: where many clients start at once (a rollout), or were all
/// refused at once (throttling), so their next calls do not arrive together.
pub fn spread(window: Duration) -> Duration {
    window.mul_f64(random_unit())
}

/// Delay before retry `attempt` after being throttled: uniform up to the doubling, capped delay
/// ("full jitter"), which spreads a crowd of throttled clients far more than the usual policy.
pub fn throttled_delay(attempt: u32, initial: Duration, max: Duration) -> Duration {
    spread(backoff_delay(attempt, initial, max, 0.0))
}

/// A uniform value in `[0, 1)` for jitter; 0 if the random generator fails (no jitter is safe).
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.0;
    }
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<u64> = (0..9)
            .map(|n| backoff_delay(n, initial, max, 0.0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff_delay(3, initial, max, 1.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(u32::MAX, initial, max, 0.0), max);
    }

    #[test]
    fn jitter_stays_within_half_of_the_delay() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempt in 0..8 {
            let full = backoff_delay(attempt, initial, max, 0.0);
            let delay = jittered_delay(attempt, initial, max);
            assert!(delay <= full && delay >= full / 2, "{attempt}: {delay:?}");
        }
    }

    #[test]
    fn spread_and_throttled_delays_stay_within_their_windows() {
        let window = Duration::from_secs(2);
        let delays: Vec<Duration> = (0..1000).map(|_| spread(window)).collect();
        assert!(delays.iter().all(|delay| *delay < window));
        // Spread over the window, not bunched: both halves are used.
        assert!(delays.iter().any(|delay| *delay < window / 4));
        assert!(delays.iter().any(|delay| *delay > window * 3 / 4));
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(120));
        for attempt in 0..12 {
            let delay = throttled_delay(attempt, initial, max);
            assert!(delay < backoff_delay(attempt, initial, max, 0.0).max(Duration::from_nanos(1)));
        }
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..1000 {
            let value = random_unit();
            assert!((0.0..1.0).contains(&value));
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_delay_is_between_half_and_all_of_the_capped_doubling(
            attempt in any::<u32>(),
            initial_ms in 1u64..60_000,
            extra_ms in 0u64..600_000,
            jitter in 0.0f64..1.0,
        ) {
            let initial = Duration::from_millis(initial_ms);
            let max = initial + Duration::from_millis(extra_ms);
            let full = initial.saturating_mul(1u32 << attempt.min(20)).min(max);
            let delay = backoff_delay(attempt, initial, max, jitter);
            prop_assert!(delay <= full && delay >= full / 2, "{delay:?} of {full:?}");
        }
    }
}
