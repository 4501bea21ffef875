//! The account's CRL API quota: one request per second shared by every CRL operation (ImportCrl,
//! UpdateCrl, GetCrl, ListCrls, DeleteCrl, EnableCrl, DisableCrl). When enforced, a call less
//! than a second after the last admitted one is refused with `ThrottlingException` (HTTP 429),
//! as the service does; every call is logged either way, so a test can see how they were spaced.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::time::Instant;

use super::ServiceError;

/// The quota: one CRL call per this interval.
pub const CRL_API_INTERVAL: Duration = Duration::from_secs(1);
/// Calls spaced a second apart when sent can arrive a little closer (one waited for a new
/// connection, the next did not); the service's token bucket is not that exact either.
pub const ARRIVAL_TOLERANCE: Duration = Duration::from_millis(50);

/// What the emulator saw of CRL calls.
#[derive(Clone, Debug, Default)]
pub struct CrlCallLog {
    /// When each admitted call arrived.
    pub admitted: Vec<Instant>,
    /// Calls refused for the quota.
    pub throttled: u64,
}

impl CrlCallLog {
    /// The shortest time between two admitted calls, if there were two.
    pub fn smallest_gap(&self) -> Option<Duration> {
        self.admitted
            .windows(2)
            .map(|pair| pair[1].saturating_duration_since(pair[0]))
            .min()
    }

    /// The most admitted calls that arrived within any one-second window.
    pub fn most_in_one_second(&self) -> usize {
        most_within(&self.admitted, CRL_API_INTERVAL)
    }
}

/// The most of `arrivals` (in order) that fall within any `window`.
pub fn most_within(arrivals: &[Instant], window: Duration) -> usize {
    let mut most = 0;
    let mut start = 0;
    for (end, at) in arrivals.iter().enumerate() {
        while at.saturating_duration_since(arrivals[start]) >= window {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[derive(Clone, Default)]
pub struct CrlQuota {
    enforce: bool,
    log: Arc<Mutex<CrlCallLog>>,
}

impl CrlQuota {
    pub fn new(enforce: bool) -> Self {
        Self {
            enforce,
            log: Arc::default(),
        }
    }

    /// Admits a CRL call, or refuses it for the quota.
    pub fn admit(&self) -> Result<(), ServiceError> {
        let now = Instant::now();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let too_soon = log.admitted.last().is_some_and(|last| {
            now.saturating_duration_since(*last) + ARRIVAL_TOLERANCE < CRL_API_INTERVAL
        });
        if self.enforce && too_soon {
            log.throttled += 1;
            return Err(ServiceError {
                status: StatusCode::TOO_MANY_REQUESTS,
                error_type: "ThrottlingException",
                message: "Rate exceeded: CRL operations allow 1 request per second".into(),
            });
        }
        log.admitted.push(now);
        Ok(())
    }

    pub fn log(&self) -> CrlCallLog {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_second_call_within_the_second_is_throttled_only_when_enforced() {
        let quota = CrlQuota::new(true);
        assert!(quota.admit().is_ok());
        let refused = quota.admit().unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        tokio::time::advance(CRL_API_INTERVAL - ARRIVAL_TOLERANCE).await;
        assert!(quota.admit().is_ok(), "within the tolerance");
        let log = quota.log();
        assert_eq!((log.admitted.len(), log.throttled), (2, 1));
        assert_eq!(log.most_in_one_second(), 2);

        let open = CrlQuota::new(false);
        assert!(open.admit().is_ok() && open.admit().is_ok());
        assert_eq!(open.log().smallest_gap(), Some(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_a_second_apart_are_one_per_second() {
        let quota = CrlQuota::new(true);
        for _ in 0..5 {
            quota.admit().unwrap();
            tokio::time::advance(CRL_API_INTERVAL).await;
        }
        let log = quota.log();
        assert_eq!(log.most_in_one_second(), 1);
        assert_eq!(log.smallest_gap(), Some(CRL_API_INTERVAL));
    }
}
