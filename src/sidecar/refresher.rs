//! The refresh loop: CreateSession with the certificate in the files now, cache the answer,
//! sleep until the refresh time (or until the files change), and back off on failure.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;

use super::cache::{CacheError, CachedCredentials};
use super::files::{CertificateFiles, FilesError};
use super::metrics::failure_reason;
use super::state::{RefreshFailure, SidecarState};
use crate::backoff::{jittered_delay, random_unit, spread, throttled_delay};
use crate::rolesanywhere::errors::CreateSessionError;
use crate::rolesanywhere::session::{SessionRequest, create_session};

/// First retry after a failure; doubles up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// A revoked certificate is retried at most this often: cheap for one pod, and well under the
/// account's 10 CreateSession/s even with many pods failing at once.
const MAX_BACKOFF: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    CreateSession(#[from] CreateSessionError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl RefreshError {
    pub fn reason(&self) -> &'static str {
        match self {
            RefreshError::Files(FilesError::Read { .. }) => "certificate_files",
            RefreshError::Files(FilesError::Expired { .. }) => "certificate_expired",
            RefreshError::Files(FilesError::NotYetValid { .. }) => "certificate_not_yet_valid",
            RefreshError::Files(FilesError::Identity(e)) | RefreshError::CreateSession(e) => {
                failure_reason(e)
            }
            RefreshError::Cache(_) => "malformed_response",
        }
    }

    /// Failures that retrying alone does not fix: someone must replace the certificate or fix
    /// the configuration. Throttling, transport and 5xx errors are expected to pass.
    pub fn needs_attention(&self) -> bool {
        !matches!(
            self,
            RefreshError::CreateSession(
                CreateSessionError::Throttled { .. }
                    | CreateSessionError::Service { .. }
                    | CreateSessionError::Transport { .. }
                    | CreateSessionError::MalformedResponse { .. }
            )
        )
    }
}

async fn refresh_once(
    files: &CertificateFiles,
    request: &SessionRequest,
) -> Result<(CachedCredentials, String), RefreshError> {
    let identity = files.load_identity()?;
    let serial = identity.serial_decimal().to_owned();
    let credentials = create_session(&identity, request).await?;
    Ok((
        CachedCredentials::new(credentials, OffsetDateTime::now_utc())?,
        serial,
    ))
}

/// Runs forever; `files_changed` cuts any wait short (a rotation refreshes within
/// `startup_spread`, as does the first call).
pub async fn run(
    state: Arc<SidecarState>,
    files: CertificateFiles,
    request: SessionRequest,
    refresh_before: Option<Duration>,
    startup_spread: Duration,
    files_changed: Arc<Notify>,
) {
    let mut failures: u32 = 0;
    let mut wait = spread(startup_spread);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = files_changed.notified() => {
                // Every pod of a re-issued certificate sees its files change within seconds.
                tokio::time::sleep(spread(startup_spread)).await;
            }
        }
        wait = match refresh_once(&files, &request).await {
            Ok((cached, serial)) => {
                failures = 0;
                let next = cached.refresh_at(refresh_before, random_unit());
                tracing::info!(
                    serial = %serial,
                    access_key_id = %cached.credentials.access_key_id,
                    expiration = %cached.expiration_rfc3339(),
                    next_refresh = %next,
                    "obtained credentials"
                );
                state.store(cached);
                state.metrics.refresh_succeeded();
                Duration::try_from(next - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO)
            }
            Err(error) => {
                let delay = match &error {
                    RefreshError::CreateSession(CreateSessionError::Throttled { .. }) => {
                        throttled_delay(failures, INITIAL_BACKOFF, MAX_BACKOFF)
                    }
                    _ => jittered_delay(failures, INITIAL_BACKOFF, MAX_BACKOFF),
                };
                failures = failures.saturating_add(1);
                let reason = error.reason();
                let still_valid = state.current(OffsetDateTime::now_utc()).is_some();
                match &error {
                    RefreshError::CreateSession(CreateSessionError::CertificateRevoked {
                        ..
                    }) => tracing::error!(
                        %error, retry_in = ?delay, cached_credentials_valid = still_valid,
                        "CreateSession refused: the certificate is revoked; a new certificate is needed"
                    ),
                    _ if error.needs_attention() => tracing::error!(
                        %error, reason, retry_in = ?delay, cached_credentials_valid = still_valid,
                        "refreshing the credentials failed"
                    ),
                    _ => tracing::warn!(
                        %error, reason, retry_in = ?delay, cached_credentials_valid = still_valid,
                        "refreshing the credentials failed; retrying"
                    ),
                }
                state.metrics.refresh_failed(reason);
                state.record_failure(RefreshFailure {
                    reason,
                    message: error.to_string(),
                    needs_attention: error.needs_attention(),
                });
                delay
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_do_not_need_attention() {
        let revoked = RefreshError::CreateSession(CreateSessionError::CertificateRevoked {
            message: "Certificate revoked".into(),
        });
        assert!(revoked.needs_attention());
        assert_eq!(revoked.reason(), "certificate_revoked");
        let transport = RefreshError::CreateSession(CreateSessionError::Transport {
            endpoint: "http://x".into(),
            reason: "refused".into(),
        });
        assert!(!transport.needs_attention());
        let missing = RefreshError::Files(FilesError::Read {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert!(missing.needs_attention());
        assert_eq!(missing.reason(), "certificate_files");
    }
}
