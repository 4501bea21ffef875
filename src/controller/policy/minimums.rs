//! The platform's floors under what a tenant may ask for. A certificate renewed every second, or a
//! CRL re-signed every minute, would spend limits every tenant shares: the controller's signing
//! capacity, the KMS request quota, and the Roles Anywhere CRL API's one request per second.

use crate::controller::reasons;
use std::time::Duration;

/// Floors set by the platform team (controller flags); no tenant object can lower them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformMinimums {
    /// Shortest certificate lifetime (`spec.duration`).
    pub certificate_duration: Duration,
    /// Shortest `spec.renewBefore`: the time left to roll a renewed certificate out.
    pub renew_before: Duration,
    /// Shortest time a certificate is used before it is renewed (`duration - renewBefore`).
    pub renewal_interval: Duration,
    /// Shortest `crl.refreshInterval` of an Issuer.
    pub crl_refresh_interval: Duration,
}

impl Default for PlatformMinimums {
    fn default() -> Self {
        Self {
            certificate_duration: Duration::from_secs(3600),
            renew_before: Duration::from_secs(5 * 60),
            renewal_interval: Duration::from_secs(30 * 60),
            crl_refresh_interval: Duration::from_secs(15 * 60),
        }
    }
}

/// A requested value under a floor; the message says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{field} is {requested} and the platform's minimum is {minimum} (controller flag --{flag}): ask for at least {minimum}"
)]
pub struct BelowMinimum {
    pub field: &'static str,
    pub requested: String,
    pub minimum: String,
    pub flag: &'static str,
}

impl BelowMinimum {
    /// The reason of the condition and event.
    pub const REASON: &'static str = reasons::BELOW_PLATFORM_MINIMUM;
}

/// `90m` rather than `5400s`: durations written back as a tenant would write them.
pub fn format_duration(duration: Duration) -> String {
    let mut seconds = duration.as_secs();
    if seconds == 0 {
        return "0s".to_string();
    }
    let mut text = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            text.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    text
}

fn at_least(
    field: &'static str,
    requested: Duration,
    minimum: Duration,
    flag: &'static str,
) -> Result<(), BelowMinimum> {
    if requested >= minimum {
        return Ok(());
    }
    Err(BelowMinimum {
        field,
        requested: format_duration(requested),
        minimum: format_duration(minimum),
        flag,
    })
}

impl PlatformMinimums {
    /// Whether a certificate of `duration` renewed `renew_before` ahead of its expiry stays above
    /// every floor.
    pub fn check_certificate(
        &self,
        duration: Duration,
        renew_before: Duration,
    ) -> Result<(), BelowMinimum> {
        at_least(
            "spec.duration",
            duration,
            self.certificate_duration,
            "min-certificate-duration",
        )?;
        at_least(
            "spec.renewBefore",
            renew_before,
            self.renew_before,
            "min-renew-before",
        )?;
        at_least(
            "spec.duration minus spec.renewBefore (how long a certificate is used before renewal)",
            duration.saturating_sub(renew_before),
            self.renewal_interval,
            "min-renewal-interval",
        )
    }

    /// The CRL refresh interval in effect: the Issuer's, or the floor when it asks for less. A
    /// CRL is never refused for this (revocations must keep reaching it); the second value says
    /// why the floor applies, for the condition and a Warning event.
    pub fn crl_refresh(&self, requested: Duration) -> (Duration, Option<BelowMinimum>) {
        match at_least(
            "crl.refreshInterval",
            requested,
            self.crl_refresh_interval,
            "min-crl-refresh-interval",
        ) {
            Ok(()) => (requested, None),
            Err(below) => (self.crl_refresh_interval, Some(below)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_defaults_accept_the_defaults_of_the_crds() {
        let minimums = PlatformMinimums::default();
        // A WorkloadCertificate without durations: 24h, renewed a third before expiry.
        assert_eq!(
            minimums.check_certificate(24 * 60 * MINUTE, 8 * 60 * MINUTE),
            Ok(())
        );
        assert_eq!(
            minimums.crl_refresh(8 * 60 * MINUTE),
            (8 * 60 * MINUTE, None)
        );
    }

    #[test]
    fn each_floor_names_its_field_and_flag() {
        let minimums = PlatformMinimums::default();
        let short = minimums
            .check_certificate(10 * MINUTE, 5 * MINUTE)
            .unwrap_err();
        assert_eq!(short.field, "spec.duration");
        assert_eq!(
            short.to_string(),
            "spec.duration is 10m and the platform's minimum is 1h (controller flag \
             --min-certificate-duration): ask for at least 1h"
        );
        let late = minimums
            .check_certificate(2 * 60 * MINUTE, MINUTE)
            .unwrap_err();
        assert_eq!(late.flag, "min-renew-before");
        // 1h renewed 59m ahead: a new certificate every minute.
        let busy = minimums
            .check_certificate(60 * MINUTE, 59 * MINUTE)
            .unwrap_err();
        assert_eq!(busy.flag, "min-renewal-interval");
        assert_eq!(busy.requested, "1m");
        assert_eq!(minimums.check_certificate(60 * MINUTE, 30 * MINUTE), Ok(()));
    }

    #[test]
    fn a_crl_refresh_under_the_floor_is_raised_not_refused() {
        let minimums = PlatformMinimums::default();
        let (effective, below) = minimums.crl_refresh(MINUTE);
        assert_eq!(effective, 15 * MINUTE);
        assert_eq!(below.map(|b| b.requested), Some("1m".to_string()));
    }

    #[test]
    fn durations_print_as_written() {
        for (seconds, text) in [(0, "0s"), (45, "45s"), (5400, "1h30m"), (90061, "25h1m1s")] {
            assert_eq!(format_duration(Duration::from_secs(seconds)), text);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::api::parse_duration;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_printed_duration_parses_back(seconds in 0u64..100_000_000) {
            let duration = Duration::from_secs(seconds);
            prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }

        #[test]
        fn any_text_parses_or_is_refused_without_a_panic(text in "\\PC{0,24}") {
            if let Ok(duration) = parse_duration(&text) {
                prop_assert!(text.chars().all(|c| c.is_ascii_digit() || "hms".contains(c)));
                prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
            }
        }

        #[test]
        fn a_certificate_passing_the_floors_renews_no_faster_than_the_floor(
            duration in 0u64..200_000,
            renew_before in 0u64..200_000,
        ) {
            let minimums = PlatformMinimums::default();
            let (duration, renew_before) = (Duration::from_secs(duration), Duration::from_secs(renew_before));
            if minimums.check_certificate(duration, renew_before).is_ok() {
                prop_assert!(duration >= minimums.certificate_duration);
                prop_assert!(renew_before >= minimums.renew_before);
                prop_assert!(duration.saturating_sub(renew_before) >= minimums.renewal_interval);
            }
        }
    }
}
