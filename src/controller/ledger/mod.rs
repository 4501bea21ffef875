//! The revocation ledger: what the controller issued and revoked, in objects only it writes.
//!
//! Design note (problem, options, choice):
//! - Problem: a CRL built from Revocation objects and their status can be shortened by anyone
//!   who may edit a status, a finalizer or an annotation, or by a backup restored without status.
//! - Options: a ConfigMap or Secret per CA (1 MiB cap, about 4,000 entries, one write hot spot),
//!   a ledger kept in the Issuer's status (tenant-writable), or one cluster-scoped object per
//!   serial that only the controller's ClusterRole may write.
//! - Choice: one [`CertificateRecord`] per serial, created *before* the certificate reaches its
//!   Secret, made append-only by CEL rules the API server enforces (the revocation can be added
//!   once, never changed or removed), and one [`CertificateAuthorityRecord`] per CA holding the
//!   CRL number (CEL refuses to lower it), the published CRL's hash and where it is imported.
//!   Every write of the CA record carries its resourceVersion, so of two writers (a paused old
//!   leader and the new one) only one wins each step. Records are keyed by the CA's public key,
//!   so deleting and re-creating an Issuer with the same key keeps its CRL numbers and entries.
//!   A record leaves the ledger (and its entry the CRL) only after its own `notAfter`.

mod authority;
mod records;

pub use authority::{ClaimOutcome, CrlNumberReserved};
pub use records::{revocation_for, revoked_entries};

use kube::Api;

use crate::api::{CertificateAuthorityRecord, CertificateRecord};

/// On every CertificateRecord: the authority id of its CA.
pub const AUTHORITY_LABEL: &str = "iamra.dev/authority";
/// On a revoked CertificateRecord, written in the same patch as its revocation.
pub const REVOKED_LABEL: &str = "iamra.dev/revoked";
/// uid of the Revocation whose request first revoked the record.
pub const REVOKED_BY_LABEL: &str = "iamra.dev/revoked-by";
/// Namespace the certificate was issued to.
pub const ISSUED_NAMESPACE_LABEL: &str = "iamra.dev/issued-namespace";
/// Hash of `<namespace>/<WorkloadCertificate name>` (a name can be longer than a label value).
pub const ISSUED_CERTIFICATE_LABEL: &str = "iamra.dev/issued-certificate";
/// First 32 hex digits of the certificate's key fingerprint.
pub const KEY_LABEL: &str = "iamra.dev/key";

/// Hex digits of a hash kept in a label value (at most 63 characters).
const LABEL_HASH_DIGITS: usize = 32;

/// The name of the record of `serial` under `authority`.
pub fn record_name(authority: &str, serial_hex: &str) -> String {
    format!("{authority}-{serial_hex}")
}

/// The label value that finds the records of one WorkloadCertificate.
pub fn certificate_label(namespace: &str, name: &str) -> String {
    let mut hash = crate::pki::sha256_hex(format!("{namespace}/{name}").as_bytes());
    hash.truncate(LABEL_HASH_DIGITS);
    hash
}

/// The label value that finds the records of one key.
pub fn key_label(key_fingerprint: &str) -> String {
    key_fingerprint.chars().take(LABEL_HASH_DIGITS).collect()
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Another writer changed the CA record between this controller's read and its write.
    #[error("the CA record {0} changed under this writer (another controller instance?); retrying")]
    Conflict(String),
}

/// The ledger's two kinds of objects.
#[derive(Clone)]
pub struct Ledger {
    records: Api<CertificateRecord>,
    authorities: Api<CertificateAuthorityRecord>,
}

impl Ledger {
    pub fn new(client: kube::Client) -> Self {
        Self {
            records: Api::all(client.clone()),
            authorities: Api::all(client),
        }
    }
}

/// True for the API server's answer to a write with a stale resourceVersion.
fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_fit_kubernetes_limits() {
        let name = record_name(&"a".repeat(32), &"f".repeat(40));
        assert!(name.len() <= 253);
        let label = certificate_label(&"n".repeat(63), &"c".repeat(253));
        assert_eq!(label.len(), LABEL_HASH_DIGITS);
        assert_ne!(certificate_label("a-b", "c"), certificate_label("a", "b-c"));
        assert_eq!(key_label(&"e".repeat(64)).len(), LABEL_HASH_DIGITS);
    }
}
