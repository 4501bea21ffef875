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
