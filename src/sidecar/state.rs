//! What the refresher writes and the HTTP handlers read.

use std::sync::RwLock;

use time::OffsetDateTime;

use super::cache::CachedCredentials;
use super::metrics::Metrics;
use super::token::{ImdsTokens, TokenError};

/// The last failed refresh, kept until one succeeds.
#[derive(Debug, Clone)]
pub struct RefreshFailure {
    pub reason: &'static str,
    pub message: String,
    /// Retrying alone will not fix it (revoked, untrusted, bad files): not ready even while
    /// the cached credentials last, so the pod shows the problem before the app hits it.
    pub needs_attention: bool,
}

pub struct SidecarState {
    cache: RwLock<Option<CachedCredentials>>,
    last_failure: RwLock<Option<RefreshFailure>>,
    pub metrics: Metrics,
    /// The container-credentials authorization token.
    pub auth_token: String,
    pub imds_tokens: ImdsTokens,
    pub role_name: String,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
}

impl SidecarState {
    pub fn new(auth_token: String, role_name: String) -> Result<Self, TokenError> {
        Ok(Self {
            cache: RwLock::new(None),
            last_failure: RwLock::new(None),
            metrics: Metrics::default(),
            auth_token,
            imds_tokens: ImdsTokens::new()?,
            role_name,
        })
    }

    pub fn store(&self, cached: CachedCredentials) {
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = Some(cached);
        *self.last_failure.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn record_failure(&self, failure: RefreshFailure) {
        *self.last_failure.write().unwrap_or_else(|p| p.into_inner()) = Some(failure);
    }

    /// The cached credentials if still valid at `now`.
    pub fn current(&self, now: OffsetDateTime) -> Option<CachedCredentials> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|cached| cached.valid_at(now).is_some())
            .cloned()
    }

    pub fn seconds_until_expiry(&self, now: OffsetDateTime) -> Option<f64> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|cached| cached.seconds_until_expiry(now))
    }

    pub fn last_failure(&self) -> Option<RefreshFailure> {
        self.last_failure
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why credentials cannot be served at `now` (for the 503 body).
    pub fn unavailable_reason(&self) -> String {
        match self.last_failure() {
            Some(failure) => format!("no valid credentials: {}", failure.message),
            None => "no credentials obtained yet".to_owned(),
        }
    }

    pub fn readiness(&self, now: OffsetDateTime) -> Readiness {
        match (self.current(now), self.last_failure()) {
            (None, _) => Readiness::NotReady(self.unavailable_reason()),
            (Some(_), Some(failure)) if failure.needs_attention => Readiness::NotReady(format!(
                "{} (cached credentials still served until they expire)",
                failure.message
            )),
            (Some(_), _) => Readiness::Ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rolesanywhere::session::Credentials;
    use time::macros::datetime;

    fn state_with_credentials() -> SidecarState {
        let state = SidecarState::new("token".into(), "role".into()).unwrap();
        state.store(
            CachedCredentials::new(
                Credentials {
                    access_key_id: "ASIA".into(),
                    secret_access_key: "s".into(),
                    session_token: "t".into(),
                    expiration: "2026-01-01T00:15:00Z".into(),
                },
                datetime!(2026-01-01 00:00:00 UTC),
            )
            .unwrap(),
        );
        state
    }

    #[test]
    fn revoked_while_cached_is_not_ready_and_nothing_is_served_after_expiry() {
        let state = state_with_credentials();
        let before = datetime!(2026-01-01 00:10:00 UTC);
        let after = datetime!(2026-01-01 00:15:00 UTC);
        assert_eq!(state.readiness(before), Readiness::Ready);
        state.record_failure(RefreshFailure {
            reason: "certificate_revoked",
            message: "the certificate is revoked".into(),
            needs_attention: true,
        });
        assert!(
            state.current(before).is_some(),
            "cached credentials still served"
        );
        match state.readiness(before) {
            Readiness::NotReady(reason) => assert!(reason.contains("revoked"), "{reason}"),
            Readiness::Ready => panic!("a revoked certificate must not be ready"),
        }
        assert!(state.current(after).is_none(), "never past expiration");
        assert!(state.unavailable_reason().contains("revoked"));
    }

    #[test]
    fn transient_failures_keep_ready_while_credentials_last() {
        let state = state_with_credentials();
        state.record_failure(RefreshFailure {
            reason: "transport",
            message: "connection refused".into(),
            needs_attention: false,
        });
        assert_eq!(
            state.readiness(datetime!(2026-01-01 00:10:00 UTC)),
            Readiness::Ready
        );
        assert!(matches!(
            state.readiness(datetime!(2026-01-01 00:16:00 UTC)),
            Readiness::NotReady(_)
        ));
    }
}
