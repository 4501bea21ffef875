//! The account's CreateSession quota: 10 requests per second, as a token bucket that holds at
//! most a second's worth (the service's published quota; its exact bucket is not documented).
//! When enforced, a request without a token is refused with `ThrottlingException` (HTTP 429).
//! Every request is counted either way, so a test or bench can see how a crowd of clients spread.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::time::Instant;

use super::ServiceError;
use super::crl_quota::most_within;

/// Requests per second the account may make.
pub const CREATE_SESSION_PER_SECOND: f64 = 10.0;

/// What the emulator saw of CreateSession requests.
#[derive(Clone, Debug, Default)]
pub struct SessionCallLog {
    /// When each admitted request arrived.
    pub admitted: Vec<Instant>,
    /// When each refused request arrived.
    pub throttled: Vec<Instant>,
}

impl SessionCallLog {
    /// The most requests, admitted or not, that arrived within any one second.
    pub fn most_arrivals_in_one_second(&self) -> usize {
        let mut all: Vec<Instant> = self
            .admitted
            .iter()
            .chain(&self.throttled)
            .copied()
            .collect();
        all.sort();
        most_within(&all, Duration::from_secs(1))
    }
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    log: SessionCallLog,
}

#[derive(Clone)]
pub struct SessionQuota {
    enforce: bool,
    bucket: Arc<Mutex<Bucket>>,
}

impl Default for SessionQuota {
    fn default() -> Self {
        Self::new(false)
    }
}

impl SessionQuota {
    pub fn new(enforce: bool) -> Self {
        Self {
            enforce,
            bucket: Arc::new(Mutex::new(Bucket {
                tokens: CREATE_SESSION_PER_SECOND,
                refilled: Instant::now(),
                log: SessionCallLog::default(),
            })),
        }
    }

    /// Admits a CreateSession request, or refuses it for the quota.
    pub fn admit(&self) -> Result<(), ServiceError> {
        let now = Instant::now();
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let earned = now.saturating_duration_since(bucket.refilled).as_secs_f64()
            * CREATE_SESSION_PER_SECOND;
        bucket.tokens = (bucket.tokens + earned).min(CREATE_SESSION_PER_SECOND);
        bucket.refilled = now;
        if self.enforce && bucket.tokens < 1.0 {
            bucket.log.throttled.push(now);
            return Err(ServiceError {
                status: StatusCode::TOO_MANY_REQUESTS,
                error_type: "ThrottlingException",
                message: "Rate exceeded".into(),
            });
        }
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        bucket.log.admitted.push(now);
        Ok(())
    }

    pub fn log(&self) -> SessionCallLog {
        self.bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_gets_ten_then_one_every_tenth_of_a_second() {
        let quota = SessionQuota::new(true);
        let admitted = (0..25).filter(|_| quota.admit().is_ok()).count();
        assert_eq!(admitted, 10);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(quota.admit().is_ok());
        assert!(quota.admit().is_err());
        let log = quota.log();
        assert_eq!((log.admitted.len(), log.throttled.len()), (11, 16));
        assert_eq!(log.most_arrivals_in_one_second(), 27);
    }

    #[tokio::test(start_paused = true)]
    async fn not_enforced_admits_everything_and_still_counts() {
        let quota = SessionQuota::new(false);
        assert!((0..25).all(|_| quota.admit().is_ok()));
        assert_eq!(quota.log().admitted.len(), 25);
    }
}
