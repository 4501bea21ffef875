//! What every reconciler shares: the client, the event recorder, and AWS clients.

use std::collections::HashMap;
use std::sync::Arc;

use kube::Resource;
use tokio::sync::OnceCell;

use crate::controller::DEFAULT_CONCURRENCY;
use crate::controller::certificate::{CacheWriters, CachedReads, cached_reads};
use crate::controller::crl::PublishedCrl;
use crate::controller::ledger::Ledger;
use crate::controller::policy::platform::PlatformConfig;
use crate::controller::revocation::IamSessionRevoker;
use crate::controller::runtime::backoff::Backoff;
use crate::controller::runtime::events::EventPublisher;
use crate::controller::runtime::fair_share::FairShare;
use crate::fence::LeadershipFence;
use crate::rolesanywhere::crl_import::CrlImporter;
use crate::signer::{KmsError, KmsSigningKey, KmsSigningOptions};

pub use crate::api::well_known::FIELD_MANAGER;

/// The API server refuses event notes longer than this.
const EVENT_NOTE_MAX_BYTES: usize = 1024;

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// Shared state of the controllers.
pub struct Context {
    pub client: kube::Client,
    events: EventPublisher,
    aws: aws_config::SdkConfig,
    kms_options: KmsSigningOptions,
    /// One lazily connected entry per KMS key: the map is locked only to find the entry, never
    /// across the GetPublicKey that fills it, so a slow key holds up no other key.
    kms_keys: std::sync::Mutex<HashMap<KmsKeyLocation, Arc<OnceCell<Arc<KmsSigningKey>>>>>,
    /// Retry delays of failing objects, keyed by uid.
    pub backoff: Backoff,
    /// How many reconciles of one kind one namespace may run at once.
    pub fair_share: Arc<FairShare>,
    /// Keeps CRLs imported into Roles Anywhere.
    pub crl_importer: CrlImporter,
    /// The platform team's configuration: AWS endpoints, KMS key grants.
    pub platform: PlatformConfig,
    /// Ends live sessions of revoked certificates, when the platform turned it on.
    pub live_sessions: Option<IamSessionRevoker>,
    /// What the controller issued and revoked: the source of every CRL.
    pub ledger: Ledger,
    /// How often a CRL Roles Anywhere holds is checked for drift.
    pub crl_drift_check_interval: std::time::Duration,
    /// Where ClusterIssuers keep their CA Secrets and CRL ConfigMaps; Revocations here are the
    /// platform team's and may revoke any serial of a ClusterIssuer.
    pub cluster_resource_namespace: String,
    /// The CRL each Issuer published last, served over HTTP; keyed by (namespace, issuer).
    published_crls: std::sync::RwLock<HashMap<(String, String), PublishedCrl>>,
    /// (ledger namespace, issuer, authority) found to be a CA the Issuer established: an Issuer
    /// stays listed on its CA's ledger record, so the check need not be made again.
    established_cas: std::sync::Mutex<std::collections::HashSet<(String, String, String)>>,
    /// When each CA's expired ledger records were last swept (Unix seconds, the clock's).
    pub expired_swept_at: std::sync::Mutex<HashMap<String, i64>>,
    /// Stores the reconcilers read instead of the API server.
    pub reads: CachedReads,
    /// The time renewal, CRL refresh and revocation release go by.
    pub clock: crate::clock::Clock,
    /// Their writers, until the reconcilers' watches take them.
    cache_writers: std::sync::Mutex<Option<CacheWriters>>,
}

/// Identifies one KMS key as an Issuer names it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct KmsKeyLocation {
    pub key_id: String,
    pub region: String,
}

impl Context {
    pub fn new(
        client: kube::Client,
        aws: aws_config::SdkConfig,
        instance: String,
        platform: PlatformConfig,
        fence: Arc<LeadershipFence>,
    ) -> Self {
        let (reads, cache_writers) = cached_reads();
        Self {
            reads,
            clock: crate::clock::Clock::system(),
            cache_writers: std::sync::Mutex::new(Some(cache_writers)),
            events: EventPublisher::new(client.clone(), "iamra", &instance),
            ledger: Ledger::new(client.clone()),
            crl_drift_check_interval: crate::controller::crl::DRIFT_CHECK_INTERVAL,
            cluster_resource_namespace: crate::controller::DEFAULT_CLUSTER_RESOURCE_NAMESPACE
                .to_string(),
            client,
            aws: aws.clone(),
            kms_options: KmsSigningOptions::default(),
            kms_keys: Default::default(),
            backoff: Backoff::default(),
            fair_share: Arc::new(FairShare::for_concurrency(DEFAULT_CONCURRENCY)),
            crl_importer: CrlImporter::new(aws.clone(), platform.rolesanywhere_endpoint.clone())
                .fenced(fence.clone()),
            live_sessions: platform
                .end_live_sessions
                .then(|| IamSessionRevoker::new(&aws, platform.iam_endpoint.as_deref(), fence)),
            platform,
            published_crls: Default::default(),
            established_cas: Default::default(),
            expired_swept_at: Default::default(),
        }
    }

    /// The writers of [`Context::reads`], once: the watches that fill the stores take them.
    pub fn take_cache_writers(&self) -> Option<CacheWriters> {
        self.cache_writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Publishes an event about `object`. Failing to record an event never fails a reconcile.
    pub async fn publish_event<K>(
        &self,
        object: &K,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) where
        K: Resource<DynamicType = ()>,
    {
        self.publish_event_about(&object.object_ref(&()), warning, reason, action, note)
            .await;
    }

    /// Publishes an event about the object `reference` names.
    pub async fn publish_event_about(
        &self,
        reference: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let note = truncate(note, EVENT_NOTE_MAX_BYTES);
        if let Err(error) = self
            .events
            .publish(reference, warning, reason, action, note)
            .await
        {
            tracing::warn!(%error, reason, "could not record event");
        }
    }

    /// The signing key for a KMS key, fetched once (GetPublicKey) and shared afterwards.
    pub async fn kms_key(&self, location: &KmsKeyLocation) -> Result<Arc<KmsSigningKey>, KmsError> {
        let entry = self
            .kms_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(location.clone())
            .or_default()
            .clone();
        // A failed connect leaves the entry empty: the next caller tries again.
        entry
            .get_or_try_init(|| self.connect_kms_key(location))
            .await
            .cloned()
    }

    async fn connect_kms_key(
        &self,
        location: &KmsKeyLocation,
    ) -> Result<Arc<KmsSigningKey>, KmsError> {
        let mut config = aws_sdk_kms::config::Builder::from(&self.aws)
            .region(aws_sdk_kms::config::Region::new(location.region.clone()))
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::standard().with_max_attempts(6));
        if let Some(endpoint) = &self.platform.kms_endpoint {
            config = config.endpoint_url(endpoint);
        }
        let client = aws_sdk_kms::Client::from_conf(config.build());
        Ok(Arc::new(
            KmsSigningKey::connect(client, &location.key_id, &self.kms_options).await?,
        ))
    }

    /// Remembers the CRL an Issuer published, for the HTTP distribution point.
    pub fn store_crl(&self, namespace: &str, issuer: &str, crl: &PublishedCrl) {
        if let Ok(mut crls) = self.published_crls.write() {
            crls.insert((namespace.to_string(), issuer.to_string()), crl.clone());
        }
    }

    /// Whether `authority` was found established by the Issuer `namespace/name`.
    pub fn is_known_established(&self, namespace: &str, name: &str, authority: &str) -> bool {
        self.established_cas.lock().is_ok_and(|known| {
            known.contains(&(
                namespace.to_string(),
                name.to_string(),
                authority.to_string(),
            ))
        })
    }

    /// Remembers that `authority` is established by the Issuer `namespace/name`.
    pub fn remember_established(&self, namespace: &str, name: &str, authority: &str) {
        if let Ok(mut known) = self.established_cas.lock() {
            known.insert((
                namespace.to_string(),
                name.to_string(),
                authority.to_string(),
            ));
        }
    }

    /// The CRL an Issuer published last, if this process published or loaded it.
    pub fn published_crl(&self, namespace: &str, issuer: &str) -> Option<PublishedCrl> {
        self.published_crls
            .read()
            .ok()?
            .get(&(namespace.to_string(), issuer.to_string()))
            .cloned()
    }

    /// Forgets a KMS key so the next use fetches it again (after the Issuer changed or failed).
    pub async fn forget_kms_key(&self, location: &KmsKeyLocation) {
        if let Ok(mut keys) = self.kms_keys.lock() {
            keys.remove(location);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncates_on_a_character_boundary() {
        assert_eq!(truncate("short".into(), 10), "short");
        let cut = truncate("é".repeat(600), 1024);
        assert!(cut.len() <= 1024 && cut.ends_with("..."), "{}", cut.len());
    }
}
