//! Keeping an Issuer's CRL imported into IAM Roles Anywhere: `ImportCrl` (enabled) the first
//! time, `UpdateCrl` on every change, and finding the CRL by name after a restart instead of
//! importing a duplicate (a trust anchor holds at most two CRLs).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_rolesanywhere::config::http::HttpResponse;
use aws_sdk_rolesanywhere::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rolesanywhere::primitives::Blob;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::api::RolesAnywhereCrlTarget;
use crate::backoff::jittered_delay;
use crate::fence::{LeadershipFence, LeadershipLapsed};
use std::sync::LazyLock;

use crate::metrics::{CounterVec, aws_error_message, aws_outcome};

/// `ImportCrl`/`UpdateCrl` refuse a CRL larger than this (PEM bytes).
pub const ROLES_ANYWHERE_MAX_CRL_BYTES: usize = 300_000;
/// All CRL operations of an account share a quota of one request per second. Calls are sent
/// this far apart so that they also arrive a second apart (one may wait for a connection, the
/// next not).
const CRL_API_INTERVAL: Duration = Duration::from_millis(1050);

/// Roles Anywhere CRL calls by operation and outcome, every attempt counted.
pub static ROLES_ANYWHERE_REQUESTS: LazyLock<CounterVec<2>> = LazyLock::new(|| {
    CounterVec::new(
        "iamra_rolesanywhere_requests_total",
        "IAM Roles Anywhere CRL calls by operation (ImportCrl, UpdateCrl, EnableCrl, GetCrl, ListCrls, DeleteCrl) and outcome.",
        ["operation", "outcome"],
    )
});

/// Attempts of one CRL operation, each paced.
const CRL_CALL_ATTEMPTS: u32 = 4;
/// First backoff of a retried CRL operation (doubled, jittered) and the longest.
const CRL_RETRY_BASE: Duration = Duration::from_secs(1);
const CRL_RETRY_MAX: Duration = Duration::from_secs(8);

/// Whether repeating an operation that may have been carried out is harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Idempotency {
    Idempotent,
    NotIdempotent,
}

fn worth_retrying<E: ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
    idempotency: Idempotency,
) -> bool {
    let status = error
        .raw_response()
        .map(|response| response.status().as_u16());
    let throttled = status == Some(429)
        || error
            .code()
            .is_some_and(|code| code.contains("Throttl") || code.contains("TooManyRequests"));
    match error {
        _ if throttled => true,
        // A dispatch failure may still have reached the service (the SDK says so).
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            idempotency == Idempotency::Idempotent
        }
        SdkError::ServiceError(_) => {
            idempotency == Idempotency::Idempotent && status.is_some_and(|s| s >= 500)
        }
        _ => false,
    }
}

/// Why an import did not happen; messages go to the Issuer's `CrlImported` condition.
#[derive(Debug, thiserror::Error)]
pub enum CrlImportError {
    #[error(
        "the CRL is {size} bytes of PEM; Roles Anywhere accepts at most {ROLES_ANYWHERE_MAX_CRL_BYTES}. Delete Revocations of expired certificates or shorten certificate lifetimes"
    )]
    TooLarge { size: usize },
    #[error("no region: set spec.rolesAnywhere.region or use a trust anchor ARN with a region")]
    NoRegion,
    #[error(
        "trust anchor {trust_anchor_arn} already holds a CRL named {name:?} that this CA did not sign: it is someone else's; set spec.rolesAnywhere.crlName to a name of this issuer's own"
    )]
    NameTaken {
        name: String,
        trust_anchor_arn: String,
    },
    #[error("Roles Anywhere {operation} failed: {message}")]
    Api {
        operation: &'static str,
        message: String,
    },
}

fn api_error<E, R>(
    operation: &'static str,
    error: aws_sdk_rolesanywhere::error::SdkError<E, R>,
) -> CrlImportError
where
    E: aws_sdk_rolesanywhere::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    CrlImportError::Api {
        operation,
        message: aws_error_message(&error),
    }
}

/// What Roles Anywhere holds compared with the CRL that should be imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportedCrlState {
    /// The same CRL, enabled.
    Current,
    /// The same CRL, but disabled.
    Disabled,
    /// Another CRL (older, or written by someone else).
    Different,
    /// No CRL with that id.
    Missing,
}

/// Whether two CRLs are the same, PEM or DER either side (the service may answer with either).
fn same_crl(held: &[u8], pem: &[u8]) -> bool {
    if held == pem {
        return true;
    }
    let der_of = |bytes: &[u8]| crate::pki::pem::der_of(bytes, "X509 CRL");
    match der_of(pem) {
        Some(der) => der_of(held).is_some_and(|held| held == der),
        None => false,
    }
}

/// Imports CRLs, spacing CRL calls one second apart per endpoint.
pub struct CrlImporter {
    sdk: aws_config::SdkConfig,
    /// The platform's endpoint override; None: the regional endpoint.
    endpoint: Option<String>,
    last_call: Mutex<HashMap<String, Instant>>,
    /// Imports, updates and deletes go only while this replica leads.
    fence: Arc<LeadershipFence>,
}

impl CrlImporter {
    pub fn new(sdk: aws_config::SdkConfig, endpoint: Option<String>) -> Self {
        Self {
            sdk,
            endpoint,
            last_call: Mutex::new(HashMap::new()),
            fence: Arc::new(LeadershipFence::unfenced()),
        }
    }

    /// Writes checked against `fence` (reads, such as the drift check, are not).
    pub fn fenced(self, fence: Arc<LeadershipFence>) -> Self {
        Self { fence, ..self }
    }

    fn client(
        &self,
        target: &RolesAnywhereCrlTarget,
    ) -> Result<(aws_sdk_rolesanywhere::Client, String), CrlImportError> {
        let region = target
            .region
            .clone()
            .or_else(|| {
                target
                    .trust_anchor_arn
                    .split(':')
                    .nth(3)
                    .map(str::to_string)
            })
            .filter(|region| !region.is_empty())
            .ok_or(CrlImportError::NoRegion)?;
        let mut config = aws_sdk_rolesanywhere::config::Builder::from(&self.sdk)
            .region(aws_sdk_rolesanywhere::config::Region::new(region.clone()))
            // The SDK's retries would not be paced: `paced` retries instead.
            .retry_config(aws_sdk_rolesanywhere::config::retry::RetryConfig::disabled());
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let key = format!("{region}|{}", self.endpoint.clone().unwrap_or_default());
        Ok((
            aws_sdk_rolesanywhere::Client::from_conf(config.build()),
            key,
        ))
    }

    /// Waits for this endpoint's turn under the one-call-per-second CRL quota.
    async fn pace(&self, key: &str) {
        let mut last_call = self.last_call.lock().await;
        if let Some(previous) = last_call.get(key) {
            tokio::time::sleep_until(*previous + CRL_API_INTERVAL).await;
        }
        last_call.insert(key.to_string(), Instant::now());
    }

    /// One CRL operation: every attempt waits its turn under the quota, and is counted. A
    /// throttled call is tried again after a jittered backoff; a call that failed otherwise
    /// without an answer (dispatch failure, timeout, 5xx) only when the operation is
    /// `Idempotent`: an ImportCrl that had succeeded would take the anchor's other CRL slot, and
    /// the next reconcile finds it by name instead.
    async fn paced<T, E, F, Fut>(
        &self,
        key: &str,
        operation: &'static str,
        idempotency: Idempotency,
        mut send: F,
    ) -> Result<T, SdkError<E, HttpResponse>>
    where
        E: ProvideErrorMetadata,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        let mut attempt = 1;
        loop {
            self.pace(key).await;
            // Checked after the wait for our turn, which can be long.
            let reads_only = operation.starts_with("List") || operation.starts_with("Get");
            if !reads_only && self.fence.check().is_err() {
                return Err(SdkError::construction_failure(LeadershipLapsed));
            }
            let result = send().await;
            ROLES_ANYWHERE_REQUESTS.inc([operation, aws_outcome(&result)]);
            match &result {
                Err(error) if attempt < CRL_CALL_ATTEMPTS && worth_retrying(error, idempotency) => {
                    tracing::debug!(operation, attempt, "retrying a CRL call");
                    tokio::time::sleep(jittered_delay(attempt - 1, CRL_RETRY_BASE, CRL_RETRY_MAX))
                        .await;
                    attempt += 1;
                }
                _ => return result,
            }
        }
    }

    /// Makes `pem` the enabled CRL named `name` on the target's trust anchor; returns its id. A
    /// CRL found by name (no id known) is taken over only if `ours` says this CA signed it: a
    /// name on a trust anchor is not proof of ownership.
    pub async fn import(
        &self,
        target: &RolesAnywhereCrlTarget,
        name: &str,
        pem: &str,
        known_crl_id: Option<&str>,
        ours: &(dyn Fn(&[u8]) -> bool + Sync),
    ) -> Result<String, CrlImportError> {
        if pem.len() > ROLES_ANYWHERE_MAX_CRL_BYTES {
            return Err(CrlImportError::TooLarge { size: pem.len() });
        }
        let (client, key) = self.client(target)?;
        let data = || Blob::new(pem.as_bytes().to_vec());

        let existing = match known_crl_id {
            Some(id) => Some((id.to_string(), true)),
            None => match self.find_by_name(&client, &key, target, name).await? {
                Some((id, enabled, data)) if ours(&data) => Some((id, enabled)),
                Some(_) => {
                    return Err(CrlImportError::NameTaken {
                        name: name.to_string(),
                        trust_anchor_arn: target.trust_anchor_arn.clone(),
                    });
                }
                None => None,
            },
        };
        if let Some((crl_id, enabled)) = existing {
            let updated = self
                .paced(&key, "UpdateCrl", Idempotency::Idempotent, || {
                    client.update_crl().crl_id(&crl_id).crl_data(data()).send()
                })
                .await;
            match updated {
                Ok(response) => {
                    let enabled = response
                        .crl()
                        .and_then(|crl| crl.enabled())
                        .unwrap_or(enabled);
                    if !enabled {
                        self.paced(&key, "EnableCrl", Idempotency::Idempotent, || {
                            client.enable_crl().crl_id(&crl_id).send()
                        })
                        .await
                        .map_err(|e| api_error("EnableCrl", e))?;
                    }
                    return Ok(crl_id);
                }
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    tracing::warn!(%crl_id, "imported CRL no longer exists; importing again");
                }
                Err(error) => return Err(api_error("UpdateCrl", error)),
            }
        }
        let response = self
            .paced(&key, "ImportCrl", Idempotency::NotIdempotent, || {
                client
                    .import_crl()
                    .name(name)
                    .crl_data(data())
                    .trust_anchor_arn(&target.trust_anchor_arn)
                    .enabled(true)
                    .send()
            })
            .await
            .map_err(|e| api_error("ImportCrl", e))?;
        response
            .crl()
            .and_then(|crl| crl.crl_id())
            .map(str::to_string)
            .ok_or_else(|| CrlImportError::Api {
                operation: "ImportCrl",
                message: "response has no crlId".into(),
            })
    }

    /// Deletes the CRL `crl_id` from the trust anchor (done when a split CRL is joined again and
    /// its second slot is no longer needed); one already gone is no error.
    pub async fn delete(
        &self,
        target: &RolesAnywhereCrlTarget,
        crl_id: &str,
    ) -> Result<(), CrlImportError> {
        let (client, key) = self.client(target)?;
        let response = self
            .paced(&key, "DeleteCrl", Idempotency::Idempotent, || {
                client.delete_crl().crl_id(crl_id).send()
            })
            .await;
        match response {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(api_error("DeleteCrl", error)),
        }
    }

    /// What Roles Anywhere holds under `crl_id`: compared with `pem` (the CRL that should be
    /// there) so drift (a CRL disabled, deleted or overwritten out of band) is found and repaired.
    pub async fn check(
        &self,
        target: &RolesAnywhereCrlTarget,
        crl_id: &str,
        pem: &str,
    ) -> Result<ImportedCrlState, CrlImportError> {
        let (client, key) = self.client(target)?;
        let response = self
            .paced(&key, "GetCrl", Idempotency::Idempotent, || {
                client.get_crl().crl_id(crl_id).send()
            })
            .await;
        match response {
            Ok(response) => {
                let Some(crl) = response.crl() else {
                    return Ok(ImportedCrlState::Missing);
                };
                let same = crl
                    .crl_data()
                    .is_some_and(|data| same_crl(data.as_ref(), pem.as_bytes()));
                Ok(match (same, crl.enabled().unwrap_or(false)) {
                    (true, true) => ImportedCrlState::Current,
                    (true, false) => ImportedCrlState::Disabled,
                    (false, _) => ImportedCrlState::Different,
                })
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(ImportedCrlState::Missing)
            }
            Err(error) => Err(api_error("GetCrl", error)),
        }
    }

    async fn find_by_name(
        &self,
        client: &aws_sdk_rolesanywhere::Client,
        key: &str,
        target: &RolesAnywhereCrlTarget,
        name: &str,
    ) -> Result<Option<(String, bool, Vec<u8>)>, CrlImportError> {
        let mut next_token: Option<String> = None;
        loop {
            let page = self
                .paced(key, "ListCrls", Idempotency::Idempotent, || {
                    client.list_crls().set_next_token(next_token.clone()).send()
                })
                .await
                .map_err(|e| api_error("ListCrls", e))?;
            // ListCrls has no trust-anchor filter: match name and anchor here.
            if let Some(crl) = page.crls().iter().find(|crl| {
                crl.name() == Some(name)
                    && crl.trust_anchor_arn() == Some(target.trust_anchor_arn.as_str())
            }) {
                let data = crl
                    .crl_data()
                    .map(|data| data.as_ref().to_vec())
                    .unwrap_or_default();
                return Ok(crl
                    .crl_id()
                    .map(|id| (id.to_string(), crl.enabled().unwrap_or(false), data)));
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
                _ => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_an_oversized_crl_before_calling_aws() {
        let sdk = aws_config::SdkConfig::builder().build();
        // Nothing listens here: the size check must come first.
        let importer = CrlImporter::new(sdk, Some("http://127.0.0.1:9".into()));
        let target = RolesAnywhereCrlTarget {
            trust_anchor_arn: "arn:aws:rolesanywhere:eu-west-1:111122223333:trust-anchor/0e4a1f5a-5c3b-4a9c-8a63-2f7d0c1b9e11".into(),
            region: None,
            crl_name: None,
        };
        let pem = "A".repeat(ROLES_ANYWHERE_MAX_CRL_BYTES + 1);
        let error = importer
            .import(&target, "crl", &pem, None, &|_| true)
            .await
            .unwrap_err();
        assert!(
            matches!(error, CrlImportError::TooLarge { size } if size == ROLES_ANYWHERE_MAX_CRL_BYTES + 1)
        );
        assert!(error.to_string().contains("at most 300000"));
    }
}
