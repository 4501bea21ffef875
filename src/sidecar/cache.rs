//! The cached credentials and when to replace them. Pure: every decision takes `now`, so the
//! "never serve past expiration" rule and the refresh schedule are tested with a fake clock.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::rolesanywhere::session::Credentials;

/// Refresh no later than this before expiration, whatever the lifetime: the AWS SDKs themselves
/// refresh container credentials about 5 minutes ahead, so we must have fresh ones by then.
pub const MIN_REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// Of the lifetime, at least this fraction remains when we refresh (15 min of a 1 h session).
pub const REFRESH_BEFORE_FRACTION: u32 = 4;
/// Up to this fraction of the refresh window is taken off at random, so many sidecars started
/// together (a rollout) do not all call CreateSession in the same second (10/s account limit).
pub const JITTER_FRACTION: f64 = 0.1;
/// Never refresh more often than this, even when the threshold exceeds the lifetime.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Credentials with their parsed expiration.
#[derive(Debug, Clone)]
pub struct CachedCredentials {
    pub credentials: Credentials,
    pub expiration: OffsetDateTime,
    pub obtained_at: OffsetDateTime,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    #[error("CreateSession returned an expiration that is not RFC 3339: {0:?}")]
    BadExpiration(String),
}

impl CachedCredentials {
    pub fn new(credentials: Credentials, obtained_at: OffsetDateTime) -> Result<Self, CacheError> {
        let expiration = OffsetDateTime::parse(&credentials.expiration, &Rfc3339)
            .map_err(|_| CacheError::BadExpiration(credentials.expiration.clone()))?;
        Ok(Self {
            credentials,
            expiration,
            obtained_at,
        })
    }

    /// The credentials if they are still valid at `now`; `None` once expired, so nothing is
    /// ever served past its expiration.
    pub fn valid_at(&self, now: OffsetDateTime) -> Option<&Credentials> {
        (now < self.expiration).then_some(&self.credentials)
    }

    /// Seconds until expiration (negative once expired), for the metrics gauge.
    pub fn seconds_until_expiry(&self, now: OffsetDateTime) -> f64 {
        (self.expiration - now).as_seconds_f64()
    }

    /// `Expiration` in the RFC 3339 form the SDKs parse.
    pub fn expiration_rfc3339(&self) -> String {
        self.expiration
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.credentials.expiration.clone())
    }

    /// When to refresh; see [`refresh_at`].
    pub fn refresh_at(&self, refresh_before: Option<Duration>, jitter: f64) -> OffsetDateTime {
        refresh_at(self.obtained_at, self.expiration, refresh_before, jitter)
    }
}

/// How long before expiration to refresh: `override_before` when given, else
/// max([`MIN_REFRESH_BEFORE`], lifetime / [`REFRESH_BEFORE_FRACTION`]).
pub fn refresh_threshold(lifetime: Duration, override_before: Option<Duration>) -> Duration {
    override_before.unwrap_or_else(|| MIN_REFRESH_BEFORE.max(lifetime / REFRESH_BEFORE_FRACTION))
}

/// The moment to call CreateSession again: `threshold` before expiration, brought forward by
/// `jitter` (a random value in `[0, 1)`) times [`JITTER_FRACTION`] of the window, and never
/// sooner than [`MIN_REFRESH_INTERVAL`] after the credentials were obtained.
pub fn refresh_at(
    obtained_at: OffsetDateTime,
    expiration: OffsetDateTime,
    override_before: Option<Duration>,
    jitter: f64,
) -> OffsetDateTime {
    let lifetime = Duration::try_from(expiration - obtained_at).unwrap_or(Duration::ZERO);
    let threshold = refresh_threshold(lifetime, override_before);
    let window = lifetime.saturating_sub(threshold);
    let jitter = window.mul_f64(JITTER_FRACTION * jitter.clamp(0.0, 1.0));
    let delay = window.saturating_sub(jitter).max(MIN_REFRESH_INTERVAL);
    obtained_at + delay
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn credentials(expiration: &str) -> Credentials {
        Credentials {
            access_key_id: "ASIATEST".into(),
            secret_access_key: "secret".into(),
            session_token: "token".into(),
            expiration: expiration.into(),
        }
    }

    #[test]
    fn never_valid_past_expiration() {
        let obtained = datetime!(2026-01-01 00:00:00 UTC);
        let cached = CachedCredentials::new(credentials("2026-01-01T00:15:00Z"), obtained).unwrap();
        assert!(cached.valid_at(obtained).is_some());
        assert!(
            cached
                .valid_at(datetime!(2026-01-01 00:14:59 UTC))
                .is_some()
        );
        assert!(
            cached
                .valid_at(datetime!(2026-01-01 00:15:00 UTC))
                .is_none()
        );
        assert!(
            cached
                .valid_at(datetime!(2026-01-01 01:00:00 UTC))
                .is_none()
        );
        assert_eq!(
            cached.seconds_until_expiry(datetime!(2026-01-01 00:14:00 UTC)),
            60.0
        );
        assert_eq!(cached.expiration_rfc3339(), "2026-01-01T00:15:00Z");
    }

    #[test]
    fn rejects_an_unparseable_expiration() {
        let error = CachedCredentials::new(credentials("tomorrow"), OffsetDateTime::UNIX_EPOCH);
        assert!(matches!(error, Err(CacheError::BadExpiration(_))));
    }

    #[test]
    fn refresh_schedule() {
        let t0 = datetime!(2026-01-01 00:00:00 UTC);
        let hour = t0 + time::Duration::hours(1);
        // One hour: a quarter (15 min) before expiry, jitter takes off up to 10% of 45 min.
        assert_eq!(
            refresh_at(t0, hour, None, 0.0),
            t0 + time::Duration::minutes(45)
        );
        let jittered =
            refresh_at(t0, hour, None, 1.0) - (t0 + time::Duration::seconds(45 * 60 - 270));
        assert!(
            jittered.abs() < time::Duration::milliseconds(1),
            "{jittered}"
        );
        // 15 minutes: the 5-minute floor wins over a quarter (3 m 45 s).
        let quarter_hour = t0 + time::Duration::minutes(15);
        assert_eq!(
            refresh_at(t0, quarter_hour, None, 0.0),
            t0 + time::Duration::minutes(10)
        );
        // 12 hours: 3 hours before.
        let twelve = t0 + time::Duration::hours(12);
        assert_eq!(
            refresh_at(t0, twelve, None, 0.0),
            t0 + time::Duration::hours(9)
        );
        // The test override, and a threshold beyond the lifetime never spins.
        assert_eq!(
            refresh_at(t0, quarter_hour, Some(Duration::from_secs(895)), 0.0),
            t0 + time::Duration::seconds(5)
        );
        assert_eq!(
            refresh_at(t0, quarter_hour, Some(Duration::from_secs(3600)), 0.5),
            t0 + time::Duration::seconds(1)
        );
        // Already expired when obtained (clock skew): retry soon, not in the past.
        assert_eq!(
            refresh_at(t0, t0, None, 0.0),
            t0 + time::Duration::seconds(1)
        );
    }
}
