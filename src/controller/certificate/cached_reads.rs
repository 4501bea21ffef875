//! What the WorkloadCertificate reconciler reads without asking the API server: reflector
//! stores that the controller's own watches keep current, and what it learned of the Secrets it
//! wrote. A reconcile with nothing to do then makes no request at all; a GET is left only where
//! the caches disagree (just after a write, before its watch event arrives) or know nothing (the
//! first look after a restart).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};

use crate::api::{
    ClusterIssuer, Issuer, IssuerKind, WorkloadCertificateStatus, WorkloadKeyAlgorithm,
};
use crate::controller::ca::LoadedCa;
use crate::controller::certificate::SecretState;

/// How long a CA loaded from a Secret that no watch covers (one the platform team supplied,
/// without the controller's label) is used before it is read again.
pub const UNWATCHED_CA_TTL: Duration = Duration::from_secs(30);

/// The stores, filled by the watches [`CacheWriters`] feed.
pub struct CachedReads {
    pub issuers: Store<Issuer>,
    pub cluster_issuers: Store<ClusterIssuer>,
    /// Namespaces' metadata: a ClusterIssuer's namespace selector is matched against it.
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Metadata of the Secrets the controller manages (its label): workload Secrets and the CA
    /// Secrets it created. Bodies are not kept: 10,000 of them would be most of the memory.
    pub managed_secrets: Store<PartialObjectMeta<Secret>>,
    secrets: Mutex<HashMap<(String, String), KnownSecret>>,
    cas: Mutex<HashMap<IssuerKey, CachedCa>>,
    /// The last status written to each WorkloadCertificate (by uid), until a reconcile has seen
    /// past it.
    status_writes: Mutex<HashMap<String, StatusWrite>>,
    /// True once every store has had its first full list.
    filled: tokio::sync::watch::Sender<bool>,
}

/// The writing halves, consumed by the watches of the reconcilers.
pub struct CacheWriters {
    pub issuers: Writer<Issuer>,
    pub cluster_issuers: Writer<ClusterIssuer>,
    pub namespaces: Writer<PartialObjectMeta<Namespace>>,
    pub managed_secrets: Writer<PartialObjectMeta<Secret>>,
}

/// Empty stores and the writers that fill them.
pub fn cached_reads() -> (CachedReads, CacheWriters) {
    let (issuers, issuers_writer) = reflector::store();
    let (cluster_issuers, cluster_issuers_writer) = reflector::store();
    let (namespaces, namespaces_writer) = reflector::store();
    let (managed_secrets, managed_secrets_writer) = reflector::store();
    (
        CachedReads {
            issuers,
            cluster_issuers,
            namespaces,
            managed_secrets,
            secrets: Mutex::default(),
            cas: Mutex::default(),
            status_writes: Mutex::default(),
            filled: tokio::sync::watch::Sender::new(false),
        },
        CacheWriters {
            issuers: issuers_writer,
            cluster_issuers: cluster_issuers_writer,
            namespaces: namespaces_writer,
            managed_secrets: managed_secrets_writer,
        },
    )
}

/// What the controller knows of a workload Secret.
#[derive(Clone, Debug)]
pub enum KnownSecret {
    /// Its content at one version.
    Read(SecretFacts),
    /// It exists (a create was refused), but its content is not known: it must be read.
    Unread,
}

/// What a workload Secret held at one resourceVersion, judged against one CA and key algorithm.
#[derive(Clone, Debug)]
pub struct SecretFacts {
    pub resource_version: String,
    /// The CA (authority id) the certificate was checked against.
    pub authority: String,
    pub key_algorithm: WorkloadKeyAlgorithm,
    pub state: SecretState,
    /// notBefore of `tls.crt`, Unix seconds (its notAfter is in `state`).
    pub not_before: i64,
    /// Whether the Secret carries this certificate's label: one it may overwrite.
    pub owned: bool,
}

/// A status write: what it replaced (a hash of it) and which certificate it reported.
struct StatusWrite {
    replaced: u64,
    serial: Option<String>,
    generation: Option<i64>,
    revision: Option<i64>,
}

fn status_hash(status: &WorkloadCertificateStatus) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    serde_json::to_string(status)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// An issuer as the CA cache names it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct IssuerKey {
    pub kind: IssuerKind,
    pub namespace: String,
    pub name: String,
}

/// A loaded CA and what it was loaded from.
struct CachedCa {
    ca: std::sync::Arc<LoadedCa>,
    issuer_uid: String,
    issuer_generation: Option<i64>,
    /// The CA Secret's resourceVersion, when a watch covers the Secret.
    secret_version: Option<String>,
    loaded_at: Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CachedReads {
    /// Waits for every store's first full list, then lets [`CachedReads::wait_until_filled`]
    /// through. Run once, by one task: a store's own readiness wakes only its latest waiter,
    /// so reconciles waiting on it side by side could wait forever.
    pub async fn mark_filled_when_listed(&self) {
        // A store whose writer is gone never fills; the reconcilers then stop with the
        // controller, so the error needs no handling here.
        let _ = self.issuers.wait_until_ready().await;
        let _ = self.cluster_issuers.wait_until_ready().await;
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.managed_secrets.wait_until_ready().await;
        self.filled.send_replace(true);
    }

    /// Resolves once every store has its first full list, so that an absent object means absent.
    pub async fn wait_until_filled(&self) {
        let mut filled = self.filled.subscribe();
        let _ = filled.wait_for(|filled| *filled).await;
    }

    pub fn issuer(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<Issuer>> {
        self.issuers.get(&ObjectRef::new(name).within(namespace))
    }

    pub fn cluster_issuer(&self, name: &str) -> Option<std::sync::Arc<ClusterIssuer>> {
        self.cluster_issuers.get(&ObjectRef::new(name))
    }

    /// The labels of a namespace; None when the store has not seen it.
    pub fn namespace_labels(
        &self,
        name: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        self.namespaces
            .get(&ObjectRef::new(name))
            .map(|ns| ns.metadata.labels.clone().unwrap_or_default())
    }

    /// The resourceVersion of a managed Secret as the watch last saw it.
    pub fn managed_secret_version(&self, namespace: &str, name: &str) -> Option<String> {
        self.managed_secrets
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|secret| secret.metadata.resource_version.clone())
    }

    /// What this controller knows of a Secret, whatever its version.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<KnownSecret> {
        lock(&self.secrets)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn remember_secret(&self, namespace: &str, name: &str, known: KnownSecret) {
        lock(&self.secrets).insert((namespace.to_string(), name.to_string()), known);
    }

    pub fn forget_secret(&self, namespace: &str, name: &str) {
        lock(&self.secrets).remove(&(namespace.to_string(), name.to_string()));
    }

    /// A CA loaded earlier for this issuer, while it is still what the issuer and its Secret
    /// say: same issuer object and generation, and the same CA Secret version (or, for a Secret
    /// no watch covers, loaded within [`UNWATCHED_CA_TTL`]).
    pub fn ca(
        &self,
        key: &IssuerKey,
        issuer_uid: &str,
        issuer_generation: Option<i64>,
        secret_version: Option<&str>,
        now: Instant,
    ) -> Option<std::sync::Arc<LoadedCa>> {
        let cas = lock(&self.cas);
        let cached = cas.get(key)?;
        let current = cached.issuer_uid == issuer_uid
            && cached.issuer_generation == issuer_generation
            && match (secret_version, &cached.secret_version) {
                (Some(now_seen), Some(loaded_from)) => now_seen == loaded_from,
                (None, None) => now.duration_since(cached.loaded_at) < UNWATCHED_CA_TTL,
                _ => false,
            };
        current.then(|| cached.ca.clone())
    }

    pub fn remember_ca(
        &self,
        key: IssuerKey,
        issuer_uid: String,
        issuer_generation: Option<i64>,
        secret_version: Option<String>,
        ca: std::sync::Arc<LoadedCa>,
        now: Instant,
    ) {
        lock(&self.cas).insert(
            key,
            CachedCa {
                ca,
                issuer_uid,
                issuer_generation,
                secret_version,
                loaded_at: now,
            },
        );
    }

    /// Forgets what was remembered for a deleted WorkloadCertificate: its Secret's facts and its
    /// last status write.
    pub fn forget_certificate(&self, namespace: &str, secret_name: &str, uid: &str) {
        self.forget_secret(namespace, secret_name);
        lock(&self.status_writes).remove(uid);
    }

    /// Remembers that `written` replaced `replaced` on the certificate `uid`.
    pub fn remember_status_write(
        &self,
        uid: &str,
        replaced: &WorkloadCertificateStatus,
        written: &WorkloadCertificateStatus,
    ) {
        lock(&self.status_writes).insert(
            uid.to_string(),
            StatusWrite {
                replaced: status_hash(replaced),
                serial: written.serial_number.clone(),
                generation: written.observed_generation,
                revision: written.revision,
            },
        );
    }

    /// Whether a reconcile that sees `shown` is looking at the object from before our last
    /// status write, and would write the same certificate's status again (`computed`). Answers
    /// yes once only: if the object still shows the replaced status on a later look, someone
    /// wrote it back, and it is written again.
    pub fn is_own_status_write_not_yet_seen(
        &self,
        uid: &str,
        shown: &WorkloadCertificateStatus,
        computed: &WorkloadCertificateStatus,
    ) -> bool {
        let mut writes = lock(&self.status_writes);
        let Some(write) = writes.remove(uid) else {
            return false;
        };
        write.replaced == status_hash(shown)
            && write.serial == computed.serial_number
            && write.generation == computed.observed_generation
            && write.revision == computed.revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;
    use std::sync::Arc;

    #[tokio::test]
    async fn every_reconcile_waiting_for_the_stores_is_let_through_once_they_are_listed() {
        let (reads, mut writers) = cached_reads();
        let reads = Arc::new(reads);
        let marker = tokio::spawn({
            let reads = reads.clone();
            async move { reads.mark_filled_when_listed().await }
        });
        // Many reconciles wait at once, as they do when a new leader starts.
        let waiters: Vec<_> = (0..32)
            .map(|_| {
                let reads = reads.clone();
                tokio::spawn(async move { reads.wait_until_filled().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "let through before any list"
        );
        writers.issuers.apply_watcher_event(&Event::InitDone);
        writers
            .cluster_issuers
            .apply_watcher_event(&Event::InitDone);
        writers.namespaces.apply_watcher_event(&Event::InitDone);
        writers
            .managed_secrets
            .apply_watcher_event(&Event::InitDone);
        let all = async {
            for waiter in waiters {
                let _ = waiter.await;
            }
            let _ = marker.await;
        };
        tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .expect("a waiter was never woken");
    }

    #[test]
    fn a_deleted_certificate_leaves_nothing_remembered() {
        let (reads, _writers) = cached_reads();
        let status = WorkloadCertificateStatus::default();
        reads.remember_secret("team", "app-tls", KnownSecret::Unread);
        reads.remember_status_write("uid-1", &status, &status);
        reads.forget_certificate("team", "app-tls", "uid-1");
        assert!(reads.secret("team", "app-tls").is_none());
        assert!(!reads.is_own_status_write_not_yet_seen("uid-1", &status, &status));
        assert!(lock(&reads.status_writes).is_empty());
    }
}
